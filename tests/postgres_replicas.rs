//! Replicas through failures (issue 13 item 7): the database stopped for 10 s under two
//! `serve --replica` processes, a replica killed (SIGKILL) in the middle of its start-up load, and
//! a follower whose change-log position was pruned away. Each ends with the processes serving
//! exactly what the database holds, read independently with SQL.

mod common;

use common::pg::{eventually_at, pg_server, serve_process, spawn_serve, Cluster, Process};
use common::{fresh_pg_database, metric, start_at, TestServer};
use serde_json::Value;
use sqlx::{Connection, PgConnection};
use std::time::{Duration, Instant};
use yizhangtu::app::App;
use yizhangtu::config::HttpSettings;

const TOWN: &str = "/collections/towns/items/500111100";

/// A seeded in-process server on a new database of `server`.
async fn primary_on(server: &str) -> TestServer {
    let db = fresh_pg_database(server).await;
    start_at(
        db,
        tempfile::tempdir().unwrap(),
        HttpSettings::default(),
        true,
    )
    .await
}

fn db_url(s: &TestServer) -> String {
    s.db.to_str().unwrap().to_string()
}

/// Two `serve --replica` processes on `db`.
async fn two_replicas(db: &str) -> Vec<(Process, String)> {
    let mut out = Vec::new();
    for _ in 0..2 {
        let db = db.to_string();
        out.push(
            tokio::task::spawn_blocking(move || serve_process(&["--replica", "--db", &db]))
                .await
                .unwrap(),
        );
    }
    out
}

async fn get(client: &reqwest::Client, url: String) -> (u16, Value) {
    let r = client.get(url).send().await.expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// A counter or gauge of `base`'s `/metrics`.
async fn scalar(c: &mut PgConnection, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&mut *c).await.unwrap()
}

/// Every layer's feature count in the database, read with SQL.
async fn counts_in(c: &mut PgConnection) -> Vec<(String, i64)> {
    sqlx::query_as(
        "SELECT l.id, (SELECT count(*) FROM features f WHERE f.layer = l.id) FROM layers l \
         ORDER BY l.id",
    )
    .fetch_all(&mut *c)
    .await
    .unwrap()
}

/// Every layer's feature count as the process at `base` serves it.
async fn counts_served(client: &reqwest::Client, base: &str) -> Vec<(String, i64)> {
    let (status, collections) = get(client, format!("{base}/collections")).await;
    assert_eq!(status, 200);
    let mut out = Vec::new();
    for c in collections["collections"].as_array().unwrap() {
        let id = c["id"].as_str().unwrap().to_string();
        let (status, page) = get(client, format!("{base}/collections/{id}/items?limit=1")).await;
        assert_eq!(status, 200, "{id}");
        out.push((id, page["numberMatched"].as_i64().unwrap()));
    }
    out.sort();
    out
}

async fn patch_name(s: &TestServer, name: &str) {
    let r = s
        .client
        .patch(s.url(TOWN))
        .header("if-match", "*")
        .header("content-type", "application/merge-patch+json")
        .body(serde_json::json!({"properties": {"name": name}}).to_string())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
}

#[tokio::test]
async fn replicas_serve_through_a_10_s_outage_then_catch_up_once() {
    let Some(cluster) = Cluster::start() else {
        return;
    };
    let primary = primary_on(&cluster.url).await;
    let db = db_url(&primary);
    let replicas = two_replicas(&db).await;
    let client = primary.client.clone();
    let mut c = PgConnection::connect(&db).await.unwrap();
    let start_pos = scalar(&mut c, "SELECT max(seq) FROM changes").await;
    let mut applied_before = Vec::new();
    for (_, base) in &replicas {
        let ready = eventually_at(&client, &format!("{base}/readyz"), |v| {
            v["checks"]["changelog"]["lag"] == 0
        })
        .await;
        assert_eq!(
            ready["checks"]["changelog"]["applied"], start_pos,
            "{ready}"
        );
        applied_before.push(metric(&client, base, "yizhangtu_engine_changes_applied_total").await);
    }
    drop(c);

    cluster.run("stop");
    // Ten seconds without a database: every read is answered from memory, with the old data;
    // /readyz says the database is what is missing.
    let cut = Instant::now();
    let mut reads = 0;
    while cut.elapsed() < Duration::from_secs(10) {
        for (_, base) in &replicas {
            let (status, town) = get(&client, format!("{base}{TOWN}")).await;
            assert_eq!(status, 200, "{town}");
            assert_eq!(town["properties"]["name"], "龙水镇");
            let (status, page) =
                get(&client, format!("{base}/collections/towns/items?limit=5")).await;
            assert_eq!(status, 200, "{page}");
            assert_eq!(page["numberMatched"], 137);
            reads += 2;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(reads >= 20);
    for (_, base) in &replicas {
        let (status, ready) = get(&client, format!("{base}/readyz")).await;
        assert_eq!(status, 503, "{ready}");
        assert!(
            ready["not_ready"].to_string().contains("database"),
            "{ready}"
        );
    }
    cluster.run("start");

    // Edits after the restart, through the primary once it reaches the database again.
    let ready = eventually_at(&client, &primary.url("/readyz"), |v| v["status"] == "ready").await;
    assert_eq!(ready["status"], "ready", "{ready}");
    patch_name(&primary, "断网之后").await;
    let (_, page) = get(&client, primary.url("/collections/towns/items?limit=2")).await;
    let gone = page["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_string())
        .find(|id| id != "500111100")
        .unwrap();
    let r = client
        .delete(primary.url(&format!("/collections/towns/items/{gone}")))
        .header("if-match", "*")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());

    let mut c = PgConnection::connect(&db).await.unwrap();
    let newest = scalar(&mut c, "SELECT max(seq) FROM changes").await;
    let written = scalar(
        &mut c,
        &format!("SELECT count(*) FROM changes WHERE seq > {start_pos}"),
    )
    .await;
    assert_eq!(written, 2, "one PATCH and one DELETE");
    let towns = scalar(
        &mut c,
        "SELECT count(*) FROM features WHERE layer = 'towns'",
    )
    .await;
    assert_eq!(towns, 136);
    let history = scalar(
        &mut c,
        "SELECT count(*) FROM feature_history WHERE layer = 'towns' AND feature_id = '500111100'",
    )
    .await;
    assert_eq!(history, 2, "the seeded version and the PATCH");
    let in_db = counts_in(&mut c).await;
    for ((_, base), before) in replicas.iter().zip(applied_before) {
        // Caught up: the new name, one town fewer, the database's position…
        let ready = eventually_at(&client, &format!("{base}/readyz"), |v| {
            v["checks"]["changelog"]["applied"] == newest
        })
        .await;
        assert_eq!(ready["checks"]["changelog"]["applied"], newest, "{ready}");
        let (_, town) = get(&client, format!("{base}{TOWN}")).await;
        assert_eq!(town["properties"]["name"], "断网之后");
        let (status, _) = get(&client, format!("{base}/collections/towns/items/{gone}")).await;
        assert_eq!(status, 404);
        assert_eq!(counts_served(&client, base).await, in_db);
        // …and each change applied exactly once.
        let after = metric(&client, base, "yizhangtu_engine_changes_applied_total").await;
        assert_eq!(after - before, written as f64, "{base}");
        let (_, h) = get(&client, format!("{base}{TOWN}/history")).await;
        assert_eq!(h["versions"].as_array().unwrap().len() as i64, history);
    }
}

#[tokio::test]
async fn a_replica_killed_mid_load_serves_the_database_after_a_restart() {
    let Some(server) = pg_server() else { return };
    let primary = primary_on(&server).await;
    let db = db_url(&primary);
    let mut c = PgConnection::connect(&db).await.unwrap();
    // A big layer written straight into the tables (as a bulk load by SQL would), so that the
    // replica's start-up load takes long enough to be caught in the middle.
    let n: i64 = 300_000;
    sqlx::raw_sql(&format!(
        "INSERT INTO layers (id, title_zh, title_en, geometry_type, created_at, updated_at) \
         VALUES ('bulk', '批量', 'bulk', 'Point', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z'); \
         INSERT INTO features (layer, id, properties, geometry, min_x, min_y, max_x, max_y, \
                               created_at, updated_at) \
         SELECT 'bulk', 'b' || i, '{{\"i\": ' || i || '}}', ST_AsBinary(p, 'NDR'), \
                ST_X(p), ST_Y(p), ST_X(p), ST_Y(p), '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z' \
         FROM (SELECT i, ST_MakePoint(105.5 + (i % 1000) * 0.0005, 29.5 + (i / 1000) * 0.0005) AS p \
               FROM generate_series(1, {n}) AS i) AS g"
    ))
    .execute(&mut c)
    .await
    .unwrap();

    let mut child = {
        let db = db.clone();
        tokio::task::spawn_blocking(move || spawn_serve(&["--replica", "--db", &db]))
            .await
            .unwrap()
    };
    // Its load is under way when the database is sending it the features.
    let start = Instant::now();
    let loading = loop {
        let busy: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND pid <> pg_backend_pid() AND state = 'active' \
             AND query LIKE 'SELECT layer, id, admin_code%ORDER BY layer, pos'",
        )
        .fetch_one(&mut c)
        .await
        .unwrap();
        if busy > 0 || start.elapsed() > Duration::from_secs(60) {
            break busy > 0;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert!(
        loading,
        "the replica's start-up load never showed in pg_stat_activity"
    );
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9));
    // It never got as far as listening.
    let mut said = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut said).unwrap();
    assert!(!said.contains(" at http://"), "{said}");

    // The database goes on meanwhile; the restarted replica loads what it holds now.
    patch_name(&primary, "重启的副本").await;
    sqlx::query("DELETE FROM features WHERE layer = 'bulk' AND id = 'b7'")
        .execute(&mut c)
        .await
        .unwrap();
    let (replica, base) = {
        let db = db.clone();
        tokio::task::spawn_blocking(move || serve_process(&["--replica", "--db", &db]))
            .await
            .unwrap()
    };
    let client = primary.client.clone();
    let in_db = counts_in(&mut c).await;
    assert!(in_db.contains(&("bulk".to_string(), n - 1)), "{in_db:?}");
    assert_eq!(counts_served(&client, &base).await, in_db);
    let (_, town) = get(&client, format!("{base}{TOWN}")).await;
    assert_eq!(town["properties"]["name"], "重启的副本");
    let (status, _) = get(&client, format!("{base}/collections/bulk/items/b7")).await;
    assert_eq!(status, 404);
    let (x, y): (f64, f64) = sqlx::query_as(
        "SELECT ST_X(geom), ST_Y(geom) FROM features WHERE layer = 'bulk' AND id = 'b123456'",
    )
    .fetch_one(&mut c)
    .await
    .unwrap();
    let (_, f) = get(&client, format!("{base}/collections/bulk/items/b123456")).await;
    assert_eq!(f["geometry"]["coordinates"], serde_json::json!([x, y]));
    assert_eq!(f["properties"]["i"], 123456);
    let newest = scalar(&mut c, "SELECT max(seq) FROM changes").await;
    let (_, ready) = get(&client, format!("{base}/readyz")).await;
    assert_eq!(ready["checks"]["changelog"]["applied"], newest, "{ready}");
    drop(replica);
}

/// A follower behind a pruned change log reloads and ends up with the database's data; one
/// ahead of the prune point goes on applying single changes. On `db` (SQLite or PostgreSQL).
async fn pruned_log_scenario(db: String) {
    let writer = App::open(&db, true, None).await.unwrap();
    // Opened now and never following on its own: its position stays where the log is now.
    let behind = App::open(&db, false, None).await.unwrap();
    let position = behind.applied_change();
    assert!(position > 0);
    // Edits the follower misses: a deleted town, a renamed one, a new layer.
    assert!(writer.store.delete("towns", "500111100").await.unwrap());
    let new_layer = r#"{"type": "FeatureCollection", "features": [{"type": "Feature", "id": "p1",
        "properties": {"name": "剪枝后"}, "geometry": {"type": "Point", "coordinates": [105.8, 29.6]}}]}"#;
    let import = |layer: &'static str, body: &'static str| {
        yizhangtu::app::import_geojson(
            &writer.store,
            &[],
            layer,
            yizhangtu::app::GeoJsonInput::Memory(Box::new(body.as_bytes())),
            Default::default(),
            yizhangtu::store::ImportMode::Upsert,
            None,
        )
    };
    import("pruned_new", new_layer).await.unwrap();
    let ahead = App::open(&db, false, None).await.unwrap();
    let newest = writer.store.last_change().await.unwrap();
    assert_eq!(ahead.applied_change(), newest);

    // Prune with the command a cron job would run, keeping one row.
    let (ok, out, err) = common::run(&["prune-changes", "--keep", "1", "--db", &db]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains(&format!("the log now starts after {}", newest - 1)),
        "{out}"
    );
    let (ok, _, err) = common::run(&["prune-changes", "--keep", "0", "--db", &db]);
    assert!(!ok && err.contains("--keep"), "{err}");

    // The follower behind notices and reloads: the deleted town is gone, the new layer there.
    let n = behind.catch_up().await.unwrap();
    assert_eq!(n as i64, newest - position);
    let towns = behind.engine.layer("towns").unwrap();
    assert!(towns.read().get("500111100").is_none());
    assert_eq!(towns.read().len(), 136);
    let added = behind.engine.layer("pruned_new").expect("the new layer");
    assert_eq!(
        added.read().get("p1").unwrap().name.as_deref(),
        Some("剪枝后")
    );
    let mut in_db = behind.store.counts().await.unwrap();
    in_db.sort();
    let mut in_engine: Vec<(String, i64)> = behind
        .engine
        .layers()
        .iter()
        .map(|l| {
            let l = l.read();
            (l.layer.id.clone(), l.len() as i64)
        })
        .collect();
    in_engine.sort();
    assert_eq!(in_engine, in_db);
    assert_eq!(behind.applied_change(), newest);
    assert!(
        behind
            .follow_stats
            .layer_reloads
            .load(std::sync::atomic::Ordering::Relaxed)
            >= in_db.len() as u64
    );

    // The follower that was already past the prune point is not reloaded by the next edit.
    assert_eq!(ahead.catch_up().await.unwrap(), 0);
    import("pruned_new", r#"{"type": "FeatureCollection", "features": [{"type": "Feature",
        "id": "p2", "properties": {}, "geometry": {"type": "Point", "coordinates": [105.81, 29.61]}}]}"#)
    .await
    .unwrap();
    assert_eq!(ahead.catch_up().await.unwrap(), 1);
    let stats = &ahead.follow_stats;
    assert_eq!(
        stats
            .layer_reloads
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    assert_eq!(
        stats
            .layer_updates
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert!(ahead
        .engine
        .layer("pruned_new")
        .unwrap()
        .read()
        .get("p2")
        .is_some());
    // The prune is in the audit log, and the chain holds.
    let audit = common::audit(&writer).await;
    assert!(audit.iter().any(|a| a.entry.action == "prune-changes"));
    assert!(writer.store.verify_audit().await.unwrap().is_ok());
}

#[tokio::test]
async fn a_follower_behind_a_pruned_log_reloads_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    pruned_log_scenario(dir.path().join("p.db").to_str().unwrap().to_string()).await;
}

#[tokio::test]
async fn a_follower_behind_a_pruned_log_reloads_on_postgres() {
    let Some(server) = pg_server() else { return };
    let db = fresh_pg_database(&server).await;
    pruned_log_scenario(db.clone()).await;
    common::drop_pg_database(&db);
}
