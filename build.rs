// The bundled data/ and seeds/ are embedded with include_dir; rebuild when they change.
fn main() {
    println!("cargo:rerun-if-changed=data");
    println!("cargo:rerun-if-changed=seeds");
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-changed=viewer");
}
