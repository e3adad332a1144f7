-- Staff notification digests: for each staff member, whether they want an email digest of
-- waiting work, how often, and which kinds of work. A staff member without a row has their
-- role's default (`notifications.*` settings): admins get one when the shop says so, agents
-- never until they turn it on. Portable like 0001: BIGINT flags (0/1) and epoch-ms times.

CREATE TABLE staff_digests (
    staff_id      TEXT PRIMARY KEY REFERENCES staff (id),
    enabled       BIGINT NOT NULL,
    every_minutes BIGINT NOT NULL,
    -- Which kinds of waiting work the digest lists.
    held          BIGINT NOT NULL,
    refunds       BIGINT NOT NULL,
    support       BIGINT NOT NULL,
    dead_jobs     BIGINT NOT NULL,
    screening     BIGINT NOT NULL,
    -- Everything that became notable before this time has been covered by a digest (sent, or
    -- found empty). The next digest starts here; advancing it is guarded on its old value, so
    -- one period is covered once however many instances race for it.
    covered_until BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX staff_digests_enabled ON staff_digests (enabled, covered_until);

-- The digest finds dead jobs and screening events by when they happened.
CREATE INDEX jobs_dead_updated ON jobs (updated_at) WHERE status = 'dead';
CREATE INDEX screening_events_started ON screening_events (started_at);
