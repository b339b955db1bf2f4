//! yizhangtu-datagen: rebuilds `data/` (districts, towns, villages) and `seeds/`
//! (the planning features of the five plans) from the reference files.
//!
//! ```text
//! cargo run -p yizhangtu-datagen --release -- \
//!     --reference ../shared/reference --documents ../shared/seeds --out .
//! ```
//!
//! The output is deterministic: the same inputs give byte-identical files on
//! every machine (sorted keys and features, 7-decimal coordinates, seeded
//! hashes instead of randomness, `libm` instead of the platform's maths).

mod admin;
mod data;
mod node;
mod out;
mod plans;
mod resolve;
mod util;

use std::path::PathBuf;

fn main() {
    let mut reference = PathBuf::from("../shared/reference");
    let mut documents = PathBuf::from("../shared/seeds");
    let mut out_dir = PathBuf::from(".");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--reference" => reference = args.next().expect("--reference DIR").into(),
            "--documents" => documents = args.next().expect("--documents DIR").into(),
            "--out" => out_dir = args.next().expect("--out DIR").into(),
            "-h" | "--help" => {
                println!(
                    "yizhangtu-datagen --reference DIR --documents DIR --out DIR\n\
                     rebuilds OUT/data and OUT/seeds from the reference files and plan documents"
                );
                return;
            }
            other => {
                eprintln!("unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    let admin = admin::build(&reference);
    eprintln!(
        "admin: {} districts, {} towns, {} villages",
        admin.districts.len(),
        admin.towns.len(),
        admin.villages.len()
    );
    data::write(&admin, &reference, &out_dir.join("data"));
    plans::write(&admin, &reference, &documents, &out_dir.join("seeds"));
}
