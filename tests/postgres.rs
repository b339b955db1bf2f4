//! What only PostgreSQL has: the PostGIS column and its GiST index, the typed view per layer
//! (read by GDAL as QGIS would), the append-only audit triggers, the error when PostGIS cannot
//! be had, and several processes sharing one database. The server is `YIZHANGTU_TEST_PG`, or
//! the throwaway cluster `tools/pg-test-server.sh start` runs; without either, the tests fail
//! (or, for a developer who says so, skip) like every test whose tool is missing.

mod common;

use common::pg::{eventually, pg_server, serve_process, Cluster};
use common::{fresh_pg_database, missing_tool, start_at, user_token, TestServer};
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection, Row};
use std::time::{Duration, Instant};
use yizhangtu::config::HttpSettings;

/// A seeded server on a new database of `server`.
async fn pg_test_server(server: &str) -> TestServer {
    let db = fresh_pg_database(server).await;
    let dir = tempfile::tempdir().expect("temp dir");
    start_at(db, dir, HttpSettings::default(), true).await
}

async fn connect(url: &str) -> PgConnection {
    PgConnection::connect(url).await.expect("connect")
}

fn db_url(s: &TestServer) -> String {
    s.db.to_str().unwrap().to_string()
}

#[tokio::test]
async fn features_have_a_postgis_column_with_a_gist_index() {
    let Some(server) = pg_server() else { return };
    let s = pg_test_server(&server).await;
    let mut c = connect(&db_url(&s)).await;
    let index: String = sqlx::query_scalar(
        "SELECT indexdef FROM pg_indexes WHERE tablename = 'features' AND indexname = 'features_geom'",
    )
    .fetch_one(&mut c)
    .await
    .unwrap();
    assert!(index.contains("USING gist (geom)"), "{index}");
    let (srid, ty): (i32, String) = sqlx::query_as(
        "SELECT srid, type FROM geometry_columns WHERE f_table_name = 'features' \
         AND f_geometry_column = 'geom'",
    )
    .fetch_one(&mut c)
    .await
    .unwrap();
    assert_eq!((srid, ty.as_str()), (4490, "GEOMETRY"));
    // Every stored geometry has its PostGIS twin, and the bundled towns come out of PostGIS
    // with the vertices and extent the bundled file (read with the geojson crate) gives.
    let missing: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM features WHERE geometry IS NOT NULL AND geom IS NULL",
    )
    .fetch_one(&mut c)
    .await
    .unwrap();
    assert_eq!(missing, 0);
    for f in common::bundled("data/towns.geojson").features {
        let id = common::feature_id(&f);
        let g: geo::Geometry<f64> = f.geometry.clone().unwrap().try_into().unwrap();
        use geo::{BoundingRect, CoordsIter};
        let rect = g.bounding_rect().unwrap();
        let row = sqlx::query(
            "SELECT ST_NPoints(geom) AS n, ST_XMin(geom) AS x0, ST_YMin(geom) AS y0, \
             ST_XMax(geom) AS x1, ST_YMax(geom) AS y1, ST_SRID(geom) AS srid \
             FROM features WHERE layer = 'towns' AND id = $1",
        )
        .bind(&id)
        .fetch_one(&mut c)
        .await
        .unwrap();
        assert_eq!(row.get::<i32, _>("n") as usize, g.coords_count(), "{id}");
        assert_eq!(row.get::<i32, _>("srid"), 4490);
        for (col, want) in [
            ("x0", rect.min().x),
            ("y0", rect.min().y),
            ("x1", rect.max().x),
            ("y1", rect.max().y),
        ] {
            assert_eq!(row.get::<f64, _>(col), want, "{id} {col}");
        }
    }
    // The index answers a spatial query: the towns around 龙水镇's seat.
    let near: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM features WHERE layer = 'towns' AND \
         geom && ST_MakeEnvelope(105.78, 29.58, 105.80, 29.60, 4490) \
         AND ST_Intersects(geom, ST_MakeEnvelope(105.78, 29.58, 105.80, 29.60, 4490))",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    let api = s
        .json("/collections/towns/items?bbox=105.78,29.58,105.80,29.60&limit=1000")
        .await;
    let mut from_api: Vec<String> = api["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_string())
        .collect();
    let mut near = near;
    near.sort();
    from_api.sort();
    assert!(!near.is_empty());
    assert_eq!(near, from_api);
}

/// See [`common::an_import_of_each_id_once_refuses_repeats`]: here on PostgreSQL, where the
/// `xmin` of a row tells whether this import wrote it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_of_each_id_once_refuses_repeats_on_postgres() {
    let Some(server) = pg_server() else { return };
    let db = fresh_pg_database(&server).await;
    let store = yizhangtu::store::Store::open(&db).await.unwrap();
    common::an_import_of_each_id_once_refuses_repeats(&store).await;
}

#[tokio::test]
async fn each_layer_has_a_view_with_typed_columns_that_follows_edits() {
    let Some(server) = pg_server() else { return };
    let s = pg_test_server(&server).await;
    let mut c = connect(&db_url(&s)).await;
    let columns: Vec<(String, String)> = sqlx::query_as(
        "SELECT column_name::text, data_type::text FROM information_schema.columns \
         WHERE table_schema = 'layer' AND table_name = 'projects'",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    let ty = |name: &str| {
        columns
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.as_str())
            .unwrap_or_else(|| panic!("no column {name} in {columns:?}"))
    };
    assert_eq!(ty("target_year"), "bigint");
    assert_eq!(ty("area_mu"), "double precision");
    assert_eq!(ty("approximate"), "boolean");
    assert_eq!(ty("plan"), "text");
    assert_eq!(ty("geom"), "USER-DEFINED");
    // Every layer has its view, with as many rows as the layer has features.
    let collections = s.json("/collections").await;
    for coll in collections["collections"].as_array().unwrap() {
        let id = coll["id"].as_str().unwrap();
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM layer.\"{id}\""))
            .fetch_one(&mut c)
            .await
            .unwrap();
        let page = s.json(&format!("/collections/{id}/items?limit=1")).await;
        assert_eq!(n, page["numberMatched"].as_i64().unwrap(), "{id}");
    }
    // A value read through the view is the API's value.
    let page = s
        .json("/collections/projects/items?limit=1&filter=target_year IS NOT NULL")
        .await;
    let f = &page["features"][0];
    let id = f["id"].as_str().unwrap();
    let year: Option<i64> =
        sqlx::query_scalar("SELECT target_year FROM layer.projects WHERE id = $1")
            .bind(id)
            .fetch_one(&mut c)
            .await
            .unwrap();
    assert_eq!(year, f["properties"]["target_year"].as_i64());
    // A PATCH that adds a property adds a typed column.
    let r = s
        .client
        .patch(s.url(&format!("/collections/projects/items/{id}")))
        .header("if-match", "*")
        .header("content-type", "application/merge-patch+json")
        .body(json!({"properties": {"pg_test_score": 7.5}}).to_string())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let score: Option<f64> =
        sqlx::query_scalar("SELECT pg_test_score FROM layer.projects WHERE id = $1")
            .bind(id)
            .fetch_one(&mut c)
            .await
            .unwrap();
    assert_eq!(score, Some(7.5));
}

/// GDAL's `PG:` connection string (keywords) for a `postgres://user@host:port/db` URL.
fn gdal_pg(url: &str) -> String {
    let rest = url.split_once("://").unwrap().1;
    let (user_host, db) = rest.split_once('/').unwrap();
    let (user, host_port) = user_host.split_once('@').unwrap();
    let (host, port) = host_port.split_once(':').unwrap_or((host_port, "5432"));
    let db = db.split('?').next().unwrap();
    format!("PG:host={host} port={port} user={user} dbname={db}")
}

#[tokio::test]
async fn gdal_reads_the_layer_views() {
    let Some(server) = pg_server() else { return };
    let s = pg_test_server(&server).await;
    let out = std::process::Command::new("ogrinfo")
        .args(["-ro", "-so", &gdal_pg(&db_url(&s)), "layer.towns"])
        .output();
    let out = match out {
        Ok(o) => o,
        Err(_) => return missing_tool("GDAL's ogrinfo (gdal-bin)"),
    };
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("Feature Count: 137"), "{text}");
    assert!(text.contains("ID[\"EPSG\",4490]"), "{text}");
    assert!(text.contains("FID Column = ogc_fid"), "{text}");
    assert!(text.contains("name: String"), "{text}");
}

#[tokio::test]
async fn the_audit_log_refuses_update_and_delete() {
    let Some(server) = pg_server() else { return };
    let s = pg_test_server(&server).await;
    let mut c = connect(&db_url(&s)).await;
    for sql in [
        "UPDATE audit SET reason = 'x' WHERE seq = 1",
        "DELETE FROM audit WHERE seq = 1",
        "TRUNCATE audit",
        "UPDATE audit_head SET seq = 0",
    ] {
        let e = sqlx::query(sql).execute(&mut c).await.unwrap_err();
        assert!(e.to_string().contains("append-only"), "{sql}: {e}");
    }
    let rows = s.app.store.verify_audit().await.unwrap().unwrap();
    assert!(rows >= 2, "{rows}");
    // With the triggers dropped, an edited row is caught by the chain.
    sqlx::raw_sql(
        "ALTER TABLE audit DISABLE TRIGGER audit_no_update; \
         UPDATE audit SET reason = 'changed' WHERE seq = 1",
    )
    .execute(&mut c)
    .await
    .unwrap();
    let broken = s.app.store.verify_audit().await.unwrap().unwrap_err();
    assert_eq!(broken.seq, 1);
}

#[tokio::test]
async fn a_user_who_cannot_create_postgis_is_told_how() {
    let Some(server) = pg_server() else { return };
    let db = fresh_pg_database(&server).await;
    let name = db.rsplit('/').next().unwrap().to_string();
    let role = format!("{name}_user");
    let mut c = connect(&db).await;
    sqlx::raw_sql(&format!(
        "CREATE ROLE {role} LOGIN; ALTER DATABASE {name} OWNER TO {role};"
    ))
    .execute(&mut c)
    .await
    .unwrap();
    let as_user = db.replacen("postgres@", &format!("{role}@"), 1);
    assert_ne!(as_user, db, "the test server URL names the postgres user");
    let e = match yizhangtu::store::Store::open(&as_user).await {
        Ok(_) => panic!("opened without PostGIS"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("CREATE EXTENSION postgis"), "{e}");
    assert!(!e.contains("password"), "{e}");
    drop(c);
    common::drop_pg_database(&db);
}

#[tokio::test]
async fn an_edit_through_one_process_shows_on_another() {
    let Some(server) = pg_server() else { return };
    let a = pg_test_server(&server).await;
    // A second server on the same database: it loads what `a` seeded.
    let b = start_at(
        db_url(&a),
        tempfile::tempdir().unwrap(),
        HttpSettings::default(),
        false,
    )
    .await;
    let token_b = user_token(&b.app, "editor_b", "admin", &[]).await;
    let path = "/collections/towns/items/500111100";
    assert_eq!(b.json(path).await["properties"]["name"], "龙水镇");
    // Through a…
    let r = a
        .client
        .patch(a.url(path))
        .header("if-match", "*")
        .header("content-type", "application/merge-patch+json")
        .body(r#"{"properties": {"name": "龙水镇（改）"}}"#)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let seen = eventually(&b, path, |v| v["properties"]["name"] == "龙水镇（改）").await;
    assert_eq!(seen["properties"]["name"], "龙水镇（改）");
    // …and back through b: every process may write (the database serialises the writers).
    let r = common::client_with(&token_b)
        .patch(b.url(path))
        .header("if-match", "*")
        .header("content-type", "application/merge-patch+json")
        .body(r#"{"properties": {"name": "龙水镇"}}"#)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let seen = eventually(&a, path, |v| v["properties"]["name"] == "龙水镇").await;
    assert_eq!(seen["properties"]["name"], "龙水镇");
    // Both wrote into one history and one audit chain.
    let history = a.json(&format!("{path}/history")).await;
    let text = history.to_string();
    assert!(text.contains("editor_b"), "{text}");
    assert!(a.app.store.verify_audit().await.unwrap().is_ok());
}

#[tokio::test]
async fn migrate_copies_every_table_of_a_sqlite_database() {
    let Some(server) = pg_server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("source.db").to_str().unwrap().to_string();
    let s = start_at(file.clone(), dir, HttpSettings::default(), true).await;
    // One edit beyond the seed, so history, audit and change log hold more than the import.
    let path = "/collections/towns/items/500111100";
    let r = s
        .client
        .patch(s.url(path))
        .header("if-match", "*")
        .header("content-type", "application/merge-patch+json")
        .body(r#"{"properties": {"note": "迁移"}}"#)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let before = s.json(path).await;
    let history_before = s.json(&format!("{path}/history")).await;
    let target = fresh_pg_database(&server).await;
    let from = format!("sqlite://{file}");
    let (ok, out, err) = common::run(&["migrate", "--from", &from, "--to", &target]);
    assert!(ok, "{out}{err}");
    // Row counts, each read independently from both databases.
    let mut sqlite = sqlx::SqliteConnection::connect(&format!("sqlite:{file}"))
        .await
        .unwrap();
    let mut pg = connect(&target).await;
    for table in [
        "layers",
        "features",
        "changes",
        "users",
        "feature_history",
        "audit",
        "plans",
        "indicators",
        "observations",
        "project_progress",
    ] {
        let sql = format!("SELECT count(*) FROM {table}");
        let a: i64 = sqlx::query_scalar(&sql)
            .fetch_one(&mut sqlite)
            .await
            .unwrap();
        let b: i64 = sqlx::query_scalar(&sql).fetch_one(&mut pg).await.unwrap();
        assert_eq!(a, b, "{table}");
        assert!(out.contains(&format!("{table}: {a} rows")), "{out}");
    }
    // A server on the copy answers as the original did, and its audit chain holds.
    let copy = start_at(
        target.clone(),
        tempfile::tempdir().unwrap(),
        HttpSettings::default(),
        false,
    )
    .await;
    assert_eq!(copy.json(path).await["properties"], before["properties"]);
    let versions = |h: &Value| -> Vec<Value> {
        h["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| json!([v["version"], v["op"], v["at"], v["user"], v["request_id"]]))
            .collect()
    };
    let history_after = copy.json(&format!("{path}/history")).await;
    assert_eq!(versions(&history_after), versions(&history_before));
    assert_eq!(versions(&history_before).len(), 2);
    assert!(copy.app.store.verify_audit().await.unwrap().is_ok());
    // The change log continues where the SQLite one stopped.
    let last: i64 = sqlx::query_scalar("SELECT max(seq) FROM changes")
        .fetch_one(&mut sqlite)
        .await
        .unwrap();
    assert_eq!(copy.app.store.last_change().await.unwrap(), last);
    // A second run finds the target full and changes nothing.
    let (ok, _, err) = common::run(&["migrate", "--from", &from, "--to", &target]);
    assert!(!ok);
    assert!(err.contains("needs an empty one"), "{err}");
}

#[tokio::test]
async fn replicas_follow_and_their_writes_go_to_the_database() {
    let Some(server) = pg_server() else { return };
    let primary = pg_test_server(&server).await;
    let db = db_url(&primary);
    let (ok, _, err) = common::run(&["serve", "--replica", "--db", "replica.db"]);
    assert!(!ok);
    assert!(err.contains("--db postgres://"), "{err}");
    let (replica, base) =
        tokio::task::spawn_blocking(move || serve_process(&["--replica", "--db", &db]))
            .await
            .unwrap();
    let client = primary.client.clone();
    let path = "/collections/towns/items/500111100";
    let get = |base: String| {
        let client = client.clone();
        async move {
            let r = client.get(format!("{base}{path}")).send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()
        }
    };
    assert_eq!(get(base.clone()).await["properties"]["name"], "龙水镇");
    // A write sent to the replica is written (the primary's admin token works on every
    // process: they share the users table) and shows on the primary…
    let r = client
        .patch(format!("{base}{path}"))
        .header("if-match", "*")
        .header("content-type", "application/merge-patch+json")
        .body(r#"{"properties": {"name": "经副本修改"}}"#)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let seen = eventually(&primary, path, |v| v["properties"]["name"] == "经副本修改").await;
    assert_eq!(seen["properties"]["name"], "经副本修改");
    // …and one through the primary shows on the replica.
    let r = client
        .patch(primary.url(path))
        .header("if-match", "*")
        .header("content-type", "application/merge-patch+json")
        .body(r#"{"properties": {"name": "龙水镇"}}"#)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let start = Instant::now();
    let mut name = Value::Null;
    while start.elapsed() < Duration::from_secs(60) {
        name = get(base.clone()).await["properties"]["name"].clone();
        if name == "龙水镇" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(name, "龙水镇");
    drop(replica);
}

#[tokio::test]
async fn a_server_keeps_serving_through_a_database_restart_and_catches_up() {
    // Its own cluster, since this one is stopped and started again.
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let url = cluster.url.clone();
    let s = pg_test_server(&url).await;
    let path = "/collections/towns/items/500111100";
    cluster.run("stop");
    // The engine still answers reads with what it has.
    assert_eq!(s.json(path).await["properties"]["name"], "龙水镇");
    assert_eq!(
        s.json("/collections/towns/items?limit=1").await["numberMatched"],
        137
    );
    cluster.run("start");
    // Another process writes after the restart; the server reconnects and catches up.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("one.geojson");
    std::fs::write(
        &file,
        r#"{"type": "FeatureCollection", "features": [{"type": "Feature", "id": "r1",
            "properties": {"name": "重启后"}, "geometry": {"type": "Point", "coordinates": [105.79, 29.59]}}]}"#,
    )
    .unwrap();
    let (ok, out, err) = common::run(&[
        "import",
        file.to_str().unwrap(),
        "--layer",
        "after_restart",
        "--db",
        &db_url(&s),
    ]);
    assert!(ok, "{out}{err}");
    let start = Instant::now();
    let mut status = 0;
    while start.elapsed() < Duration::from_secs(60) {
        status = s
            .get("/collections/after_restart/items/r1")
            .await
            .status()
            .as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200);
}
