-- Set on a task, durably, before a run sends its object's write: a later run that finds the
-- object compliant knows this job made it so (its run died before recording it), and
-- reports it as re-encrypted, not as found compliant.
ALTER TABLE tasks ADD COLUMN write_started INTEGER NOT NULL DEFAULT 0;

-- A finished job's completion report is written exactly once: a run claims it (with an
-- expiry, so that a run killed while writing it does not block the next), writes the
-- results and then manifest.json, and marks it written.
ALTER TABLE jobs ADD COLUMN report_claim TEXT;
ALTER TABLE jobs ADD COLUMN report_claim_expires INTEGER;
ALTER TABLE jobs ADD COLUMN report_written_at INTEGER;
