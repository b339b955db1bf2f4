-- This database's identity, drawn once at creation (as on SQLite, migrations/sqlite/0005): an
-- engine snapshot file names the database it was written from. One row.
CREATE TABLE instance (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    uuid        TEXT NOT NULL
);
INSERT INTO instance (id, uuid) VALUES (1, md5(random()::text || clock_timestamp()::text || pg_backend_pid()::text));
