-- How far the change log has been pruned (`yizhangtu prune-changes`): every row with
-- seq <= pruned_upto may be gone. A follower whose position is older than that has missed
-- changes it can no longer read, and reloads every layer instead. One row at most.
CREATE TABLE changes_pruned (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    pruned_upto INTEGER NOT NULL,
    at          TEXT NOT NULL
);
