-- Tasks are leased in the order of a hash of their key, not the manifest's order: an
-- inventory is sorted by key, so leasing in its order would put every task in flight
-- under one prefix, and S3's request rates are per prefix.
ALTER TABLE tasks ADD COLUMN spread INTEGER NOT NULL DEFAULT 0;
CREATE INDEX tasks_by_spread ON tasks (job_pk, state, spread, seq);
