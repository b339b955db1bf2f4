-- Layers (OGC API collections) and their features; geometry as WKB in CGCS2000 lon/lat (EPSG:4490).
CREATE TABLE layers (
    id              TEXT PRIMARY KEY,
    title_zh        TEXT NOT NULL,
    title_en        TEXT NOT NULL,
    description     TEXT NOT NULL DEFAULT '',
    geometry_type   TEXT NOT NULL DEFAULT 'Geometry',
    property_schema TEXT NOT NULL DEFAULT 'null',
    -- Bumped by every change to the layer; readers use it for ETags.
    revision        INTEGER NOT NULL DEFAULT 0,
    -- Next number for features imported without an id.
    next_id         INTEGER NOT NULL DEFAULT 1,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);

CREATE TABLE features (
    layer       TEXT NOT NULL REFERENCES layers(id) ON DELETE CASCADE,
    id          TEXT NOT NULL,
    admin_code  TEXT,
    name        TEXT,
    properties  TEXT NOT NULL DEFAULT '{}',
    geometry    BLOB,
    min_x       REAL,
    min_y       REAL,
    max_x       REAL,
    max_y       REAL,
    version     INTEGER NOT NULL DEFAULT 1,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (layer, id)
);
CREATE INDEX features_admin_code ON features(admin_code);
CREATE INDEX features_bbox ON features(layer, min_x, max_x, min_y, max_y);

-- The change log: every write appends here in the same transaction. Running servers follow it
-- (seq greater than what they have applied) to update their in-memory engine without a restart.
CREATE TABLE changes (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    layer       TEXT NOT NULL,
    -- NULL for whole-layer operations.
    feature_id  TEXT,
    -- 'insert' | 'update' | 'delete' | 'layer' (metadata) | 'replace' (whole layer swapped)
    op          TEXT NOT NULL,
    version     INTEGER,
    at          TEXT NOT NULL
);
