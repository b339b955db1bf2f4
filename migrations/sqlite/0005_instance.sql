-- This database's identity, drawn once at creation: an engine snapshot file (src/engine/snapshot.rs)
-- names the database it was written from, so that a snapshot of another database (a copy that
-- went its own way, a re-created file) is never taken for this one's. One row.
CREATE TABLE instance (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    uuid        TEXT NOT NULL
);
INSERT INTO instance (id, uuid) VALUES (1, lower(hex(randomblob(16))));
