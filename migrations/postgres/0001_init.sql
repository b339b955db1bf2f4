-- The PostgreSQL schema: every table of migrations/sqlite/0001–0003 in one migration, with the
-- same columns and meaning (see those files), plus what PostgreSQL adds: a PostGIS geometry
-- column with a GiST index, insertion order (`pos`, SQLite's rowid), NOTIFY on change and the
-- audit log's high-water mark. Times stay fixed-width RFC 3339 text, as on SQLite, so that both
-- databases sort, compare and hash them identically. PostGIS itself is created by the store before
-- migrating (with a clear error when the server lacks it).

CREATE TABLE layers (
    id              TEXT PRIMARY KEY,
    title_zh        TEXT NOT NULL,
    title_en        TEXT NOT NULL,
    description     TEXT NOT NULL DEFAULT '',
    geometry_type   TEXT NOT NULL DEFAULT 'Geometry',
    property_schema TEXT NOT NULL DEFAULT 'null',
    revision        BIGINT NOT NULL DEFAULT 0,
    next_id         BIGINT NOT NULL DEFAULT 1,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);

-- `geometry` is yizhangtu's own WKB (what the engine loads, byte for byte); `geom` is the same
-- geometry for PostGIS users (QGIS, ogr2ogr PG:, SQL), made from it by ST_GeomFromWKB.
CREATE TABLE features (
    pos         BIGINT GENERATED ALWAYS AS IDENTITY,
    layer       TEXT NOT NULL REFERENCES layers(id) ON DELETE CASCADE,
    id          TEXT NOT NULL,
    admin_code  TEXT,
    name        TEXT,
    properties  TEXT NOT NULL DEFAULT '{}',
    geometry    BYTEA,
    geom        geometry(Geometry, 4490)
                GENERATED ALWAYS AS (ST_GeomFromWKB(geometry, 4490)) STORED,
    min_x       DOUBLE PRECISION,
    min_y       DOUBLE PRECISION,
    max_x       DOUBLE PRECISION,
    max_y       DOUBLE PRECISION,
    version     BIGINT NOT NULL DEFAULT 1,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (layer, id)
);
CREATE INDEX features_pos ON features(layer, pos);
CREATE INDEX features_admin_code ON features(admin_code);
CREATE INDEX features_geom ON features USING gist (geom);

CREATE TABLE changes (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    layer       TEXT NOT NULL,
    feature_id  TEXT,
    op          TEXT NOT NULL,
    version     BIGINT,
    at          TEXT NOT NULL
);

CREATE TABLE users (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    role        TEXT NOT NULL,
    scope       TEXT NOT NULL DEFAULT '',
    token_id    TEXT UNIQUE,
    token_hash  TEXT,
    revoked_at  TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

CREATE TABLE feature_history (
    layer       TEXT NOT NULL,
    feature_id  TEXT NOT NULL,
    version     BIGINT NOT NULL,
    op          TEXT NOT NULL,
    admin_code  TEXT,
    name        TEXT,
    properties  TEXT NOT NULL DEFAULT '{}',
    geometry    BYTEA,
    at          TEXT NOT NULL,
    user_name   TEXT,
    reason      TEXT,
    request_id  TEXT,
    PRIMARY KEY (layer, feature_id, version)
);
CREATE INDEX feature_history_at ON feature_history(layer, at);

CREATE TABLE audit (
    seq         BIGINT PRIMARY KEY,
    at          TEXT NOT NULL,
    user_name   TEXT,
    role        TEXT,
    address     TEXT,
    action      TEXT NOT NULL,
    layer       TEXT,
    ids         TEXT NOT NULL DEFAULT '[]',
    reason      TEXT,
    request_id  TEXT,
    outcome     TEXT NOT NULL,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
);
CREATE INDEX audit_at ON audit(at);

-- The highest audit number ever handed out (SQLite's sqlite_sequence): rows cut off the end of
-- the chain show as missing. Only ever raised.
CREATE TABLE audit_head (
    one  BOOLEAN PRIMARY KEY DEFAULT true CHECK (one),
    seq  BIGINT NOT NULL
);
INSERT INTO audit_head (seq) VALUES (0);

CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only';
END $$;
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();

CREATE FUNCTION audit_head_only_up() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.seq < OLD.seq THEN
        RAISE EXCEPTION 'the audit log is append-only';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER audit_head_up BEFORE UPDATE ON audit_head
    FOR EACH ROW EXECUTE FUNCTION audit_head_only_up();
CREATE TRIGGER audit_head_no_delete BEFORE DELETE OR TRUNCATE ON audit_head
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();

CREATE TABLE plans (
    id            TEXT PRIMARY KEY,
    title         TEXT NOT NULL,
    issuer        TEXT NOT NULL,
    doc_number    TEXT,
    issued        TEXT,
    period_start  INTEGER NOT NULL,
    period_end    INTEGER NOT NULL,
    period_text   TEXT NOT NULL DEFAULT '',
    district      TEXT NOT NULL,
    district_code TEXT NOT NULL,
    focus_unit    TEXT NOT NULL,
    focus_code    TEXT NOT NULL,
    document      TEXT NOT NULL
);

CREATE TABLE indicators (
    id             TEXT PRIMARY KEY,
    plan           TEXT NOT NULL REFERENCES plans(id),
    name           TEXT NOT NULL,
    scope_code     TEXT NOT NULL,
    scope_text     TEXT NOT NULL DEFAULT '',
    unit           TEXT NOT NULL DEFAULT '',
    baseline_value DOUBLE PRECISION,
    baseline_year  INTEGER,
    target_value   DOUBLE PRECISION NOT NULL,
    target_year    INTEGER NOT NULL,
    binding        TEXT,
    direction      TEXT NOT NULL,
    category       TEXT NOT NULL,
    quote          TEXT,
    catalog        TEXT NOT NULL DEFAULT ''
);
CREATE INDEX indicators_plan ON indicators(plan);
CREATE INDEX indicators_scope ON indicators(scope_code);

CREATE TABLE observations (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    indicator   TEXT NOT NULL REFERENCES indicators(id),
    value       DOUBLE PRECISION NOT NULL,
    observed_on TEXT NOT NULL,
    source      TEXT NOT NULL,
    note        TEXT NOT NULL DEFAULT '',
    recorded_by TEXT NOT NULL,
    recorded_at TEXT NOT NULL
);
CREATE INDEX observations_indicator ON observations(indicator, observed_on);

CREATE TABLE project_progress (
    seq                      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    layer                    TEXT NOT NULL,
    feature_id               TEXT NOT NULL,
    status                   TEXT NOT NULL,
    start_date               TEXT,
    end_date                 TEXT,
    progress_percent         DOUBLE PRECISION,
    investment_done_wan_yuan DOUBLE PRECISION,
    reported_on              TEXT NOT NULL,
    source                   TEXT NOT NULL,
    note                     TEXT NOT NULL DEFAULT '',
    recorded_by              TEXT NOT NULL,
    recorded_at              TEXT NOT NULL
);
CREATE INDEX project_progress_feature ON project_progress(layer, feature_id, seq);

-- One view per layer (`layer.<id>`), with the properties as typed columns, is made by the store
-- as layers are written (see store/postgres.rs, `refresh_view`).
CREATE SCHEMA layer;
