-- Running for years: what is pruned is found by age through these indexes, and an email whose
-- body was deleted (by retention or an erasure request) says so.

ALTER TABLE emails ADD COLUMN body_deleted_at BIGINT;
CREATE INDEX emails_sent_with_body ON emails (sent_at) WHERE body_deleted_at IS NULL AND sent_at IS NOT NULL;
CREATE INDEX emails_abandoned_with_body ON emails (abandoned_at) WHERE body_deleted_at IS NULL AND abandoned_at IS NOT NULL;
CREATE INDEX jobs_done_updated ON jobs (updated_at) WHERE status = 'done';
