-- Requests refused by a rate limit, counted per client IP and minute instead of one row per
-- refusal: an attack makes one upserted row per address and minute, and rows older than the
-- risk rules look back are pruned. The rows kept so far are carried over, counted the same way.
CREATE TABLE rate_limit_counts (
    client_ip    TEXT NOT NULL,
    window_start BIGINT NOT NULL,
    hits         BIGINT NOT NULL,
    PRIMARY KEY (client_ip, window_start)
);

INSERT INTO rate_limit_counts (client_ip, window_start, hits)
SELECT client_ip, (at / 60000) * 60000, COUNT(*)
FROM rate_limit_hits
GROUP BY client_ip, (at / 60000) * 60000;

DROP TABLE rate_limit_hits;
