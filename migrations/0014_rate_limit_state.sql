-- Rate limits shared by every instance (`rate_limits.store = "database"`): per limit and client,
-- the theoretical arrival time of GCRA, as governor computes it in memory, in nanoseconds since
-- the epoch. One upsert per check decides and moves it; `allowed` is that check's answer (read
-- back with RETURNING). A row whose time has passed says no more than a missing row (a full
-- bucket), so the sweep deletes those: the table holds only clients limited right now.
CREATE TABLE rate_limit_state (
    limit_name TEXT NOT NULL,
    client_key TEXT NOT NULL,
    tat_ns     BIGINT NOT NULL,
    allowed    BIGINT NOT NULL,
    PRIMARY KEY (limit_name, client_key)
);
