-- Plans, their indicators (指标) with observations, and the progress history of projects.
-- Observations and progress records are append-only: nothing here is updated or deleted.
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
    baseline_value REAL,
    baseline_year  INTEGER,
    target_value   REAL NOT NULL,
    target_year    INTEGER NOT NULL,
    -- 'binding' (约束性), 'expected' (预期性) or NULL when the plan does not say
    binding        TEXT,
    -- 'increase' | 'decrease' | 'keep'
    direction      TEXT NOT NULL,
    category       TEXT NOT NULL,
    quote          TEXT,
    catalog        TEXT NOT NULL DEFAULT ''
);
CREATE INDEX indicators_plan ON indicators(plan);
CREATE INDEX indicators_scope ON indicators(scope_code);

CREATE TABLE observations (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    indicator   TEXT NOT NULL REFERENCES indicators(id),
    value       REAL NOT NULL,
    -- the date the value describes, YYYY-MM-DD
    observed_on TEXT NOT NULL,
    source      TEXT NOT NULL,
    note        TEXT NOT NULL DEFAULT '',
    recorded_by TEXT NOT NULL,
    recorded_at TEXT NOT NULL
);
CREATE INDEX observations_indicator ON observations(indicator, observed_on);

-- One row per progress report of a project feature; the newest is the project's current state,
-- which is also written into the feature's properties (status, progress_percent, …).
CREATE TABLE project_progress (
    seq                      INTEGER PRIMARY KEY AUTOINCREMENT,
    layer                    TEXT NOT NULL,
    feature_id               TEXT NOT NULL,
    status                   TEXT NOT NULL,
    start_date               TEXT,
    end_date                 TEXT,
    progress_percent         REAL,
    investment_done_wan_yuan REAL,
    reported_on              TEXT NOT NULL,
    source                   TEXT NOT NULL,
    note                     TEXT NOT NULL DEFAULT '',
    recorded_by              TEXT NOT NULL,
    recorded_at              TEXT NOT NULL
);
CREATE INDEX project_progress_feature ON project_progress(layer, feature_id, seq);
