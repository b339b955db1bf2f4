//! GDAL's real OGC API – Features client reads every layer with the right counts.

mod common;

use std::process::Command;

fn have_ogrinfo() -> bool {
    Command::new("ogrinfo")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ogrinfo_reads_every_collection() {
    if !have_ogrinfo() {
        common::missing_tool("GDAL's ogrinfo (apt-get install gdal-bin)");
        return;
    }
    let s = common::start().await;
    let expected: Vec<(String, u64)> = s.json("/collections").await["collections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap().to_string(),
                c["numberOfFeatures"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(expected.len() >= 2);
    let target = format!("OAPIF:{}", s.base);
    let out = tokio::task::spawn_blocking(move || {
        Command::new("ogrinfo")
            .args(["-ro", "-al", "-so", &target])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "ogrinfo failed: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (id, count) in &expected {
        let section = text
            .split("Layer name: ")
            .find(|s| s.lines().next() == Some(id.as_str()))
            .unwrap_or_else(|| panic!("ogrinfo does not list {id}:\n{text}"));
        assert!(
            section.contains(&format!("Feature Count: {count}\n")),
            "{id} should have {count} features:\n{section}"
        );
    }
    // And it reads the features themselves, following our paging: every district by name.
    let target = format!("OAPIF:{}", s.base);
    let out = tokio::task::spawn_blocking(move || {
        Command::new("ogrinfo")
            .args(["-ro", "-q", &target, "districts", "-oo", "PAGE_SIZE=2"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for name in ["大足区", "永川区", "荣昌区", "开州区", "武隆区"] {
        assert!(
            text.contains(&format!("name (String) = {name}")),
            "ogrinfo did not read {name}:\n{}",
            &text[..text.len().min(3000)]
        );
    }
    assert_eq!(text.matches("OGRFeature(districts)").count(), 5);
}
