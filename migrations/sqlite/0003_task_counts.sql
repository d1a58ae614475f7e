-- The counts of a job's tasks by state, kept in the same transaction as every change of
-- the tasks, so that progress and the failure threshold never scan the task table.
ALTER TABLE jobs ADD COLUMN tasks_pending INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN tasks_leased INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN tasks_succeeded INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN tasks_failed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN tasks_skipped INTEGER NOT NULL DEFAULT 0;

UPDATE jobs SET
    tasks_pending   = (SELECT COUNT(*) FROM tasks WHERE job_pk = jobs.pk AND state = 'pending'),
    tasks_leased    = (SELECT COUNT(*) FROM tasks WHERE job_pk = jobs.pk AND state = 'leased'),
    tasks_succeeded = (SELECT COUNT(*) FROM tasks WHERE job_pk = jobs.pk AND state = 'succeeded'),
    tasks_failed    = (SELECT COUNT(*) FROM tasks WHERE job_pk = jobs.pk AND state = 'failed'),
    tasks_skipped   = (SELECT COUNT(*) FROM tasks WHERE job_pk = jobs.pk AND state = 'skipped');
