//! The command line: help for every command, import all-or-nothing, layers with counts.

mod common;

use common::run;

#[test]
fn every_command_has_help() {
    for cmd in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["import", "--help"],
        vec!["layers", "--help"],
    ] {
        let (ok, out, _) = run(&cmd);
        assert!(ok, "{cmd:?}");
        assert!(out.contains("Usage:"), "{cmd:?}: {out}");
    }
    let (_, out, _) = run(&["serve", "--help"]);
    for flag in ["--listen", "--db", "DATABASE_URL", "YIZHANGTU_LISTEN"] {
        assert!(out.contains(flag), "serve --help lacks {flag}");
    }
    let (ok, _, err) = run(&["frobnicate"]);
    assert!(!ok && err.contains("frobnicate"));
}

#[test]
fn import_is_all_or_nothing_and_layers_counts() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cli.db");
    let db = db.to_str().unwrap();
    let good = dir.path().join("good.geojson");
    std::fs::write(
        &good,
        r#"{"type":"FeatureCollection","features":[
          {"type":"Feature","id":"p1","properties":{"name":"一"},"geometry":{"type":"Point","coordinates":[105.7,29.6]}},
          {"type":"Feature","id":"p2","properties":{"name":"二"},"geometry":{"type":"Point","coordinates":[105.8,29.7]}},
          {"type":"Feature","properties":{"name":"三"},"geometry":null}]}"#,
    )
    .unwrap();
    let (ok, out, err) = run(&[
        "import",
        good.to_str().unwrap(),
        "--layer",
        "pts",
        "--db",
        db,
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("3 inserted"), "{out}");

    let bad = dir.path().join("bad.geojson");
    let mut features: Vec<String> = (0..30)
        .map(|i| format!(r#"{{"type":"Feature","id":"b{i}","properties":{{}},"geometry":{{"type":"Point","coordinates":[200,29]}}}}"#))
        .collect();
    features.push(r#"{"type":"Feature","id":"fine","properties":{},"geometry":{"type":"Point","coordinates":[105,29]}}"#.into());
    std::fs::write(
        &bad,
        format!(
            r#"{{"type":"FeatureCollection","features":[{}]}}"#,
            features.join(",")
        ),
    )
    .unwrap();
    let (ok, _, err) = run(&[
        "import",
        bad.to_str().unwrap(),
        "--layer",
        "pts",
        "--db",
        db,
    ]);
    assert!(!ok);
    assert!(err.contains("30 of 31 features are invalid"), "{err}");
    assert!(
        err.contains("feature 0 (id b0): geometry: longitude 200"),
        "{err}"
    );
    assert!(err.contains("… and 10 more"), "{err}");

    // Coordinates outside China mean a wrong CRS or axis order: refused, naming the feature.
    let far = dir.path().join("far.geojson");
    std::fs::write(
        &far,
        r#"{"type":"FeatureCollection","features":[{"type":"Feature","id":"paris","properties":{},"geometry":{"type":"Point","coordinates":[2.35,48.85]}}]}"#,
    )
    .unwrap();
    let (ok, _, err) = run(&[
        "import",
        far.to_str().unwrap(),
        "--layer",
        "pts",
        "--db",
        db,
    ]);
    assert!(
        !ok && err.contains("id paris") && err.contains("outside China"),
        "{err}"
    );
    let (ok, _, err) = run(&[
        "import",
        "/no/such/file.geojson",
        "--layer",
        "pts",
        "--db",
        db,
    ]);
    assert!(!ok && err.contains("cannot read"), "{err}");
    let (ok, _, err) = run(&[
        "import",
        good.to_str().unwrap(),
        "--layer",
        "Bad Name",
        "--db",
        db,
    ]);
    assert!(!ok && err.contains("invalid layer name"), "{err}");

    let (ok, out, _) = run(&["layers", "--db", db]);
    assert!(ok);
    let line = out
        .lines()
        .find(|l| l.starts_with("pts "))
        .expect("pts listed");
    assert_eq!(line.split_whitespace().nth(1), Some("3"), "{out}");

    // --replace swaps the layer: the same 3 features, then 2 after replacing with 2.
    let two = dir.path().join("two.geojson");
    std::fs::write(
        &two,
        r#"{"type":"FeatureCollection","features":[
          {"type":"Feature","id":"x","properties":{},"geometry":{"type":"Point","coordinates":[105.7,29.6]}},
          {"type":"Feature","id":"y","properties":{},"geometry":{"type":"Point","coordinates":[105.8,29.7]}}]}"#,
    )
    .unwrap();
    let (ok, out, err) = run(&[
        "import",
        two.to_str().unwrap(),
        "--layer",
        "pts",
        "--replace",
        "--db",
        db,
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("2 inserted, 0 updated, 3 removed"), "{out}");
    let (_, out, _) = run(&["layers", "--db", db]);
    let line = out.lines().find(|l| l.starts_with("pts ")).unwrap();
    assert_eq!(line.split_whitespace().nth(1), Some("2"), "{out}");
}
