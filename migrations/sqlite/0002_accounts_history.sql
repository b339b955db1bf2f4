-- Accounts, feature history and the hash-chained audit log (issue 11).

-- Users and their API token. The token itself is never stored: `token_id` is a random public
-- part of it used to find the row (one hash to verify, not one per user), `token_hash` the
-- argon2 PHC string of the secret part.
CREATE TABLE users (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL UNIQUE,
    -- 'viewer' | 'editor' | 'steward' | 'admin'
    role        TEXT NOT NULL,
    -- Comma-separated admin codes (6-digit districts, 9-digit towns) an editor or steward may
    -- write in; empty for the whole county.
    scope       TEXT NOT NULL DEFAULT '',
    token_id    TEXT UNIQUE,
    token_hash  TEXT,
    revoked_at  TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

-- Every version of every feature (强制留痕): written in the same transaction as the change.
-- A deletion is a version too (op 'delete', the last state kept), so deleted features keep
-- their history, and a feature created again later continues the numbering.
CREATE TABLE feature_history (
    layer       TEXT NOT NULL,
    feature_id  TEXT NOT NULL,
    version     INTEGER NOT NULL,
    -- 'insert' | 'update' | 'delete'
    op          TEXT NOT NULL,
    admin_code  TEXT,
    name        TEXT,
    properties  TEXT NOT NULL DEFAULT '{}',
    geometry    BLOB,
    -- UTC, RFC 3339 with microseconds (fixed width, so text order is time order).
    at          TEXT NOT NULL,
    user_name   TEXT,
    reason      TEXT,
    request_id  TEXT,
    PRIMARY KEY (layer, feature_id, version)
);
CREATE INDEX feature_history_at ON feature_history(layer, at);

-- The audit log: one row per write, import, replace, user change or refused attempt. Each row's
-- `hash` is SHA-256 of the previous row's hash and this row's canonical content, so changing or
-- deleting a row breaks the chain (`yizhangtu audit verify`).
CREATE TABLE audit (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    at          TEXT NOT NULL,
    user_name   TEXT,
    role        TEXT,
    address     TEXT,
    action      TEXT NOT NULL,
    layer       TEXT,
    ids         TEXT NOT NULL DEFAULT '[]',
    reason      TEXT,
    request_id  TEXT,
    -- 'ok' or why it was refused
    outcome     TEXT NOT NULL,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
);
CREATE INDEX audit_at ON audit(at);

-- Append-only from yizhangtu's side; someone with the file can still drop these, which the
-- hash chain then shows.
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
