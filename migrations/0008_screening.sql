-- Screening that tells strangers from attackers (issue 13). Portable like 0001.

-- What an attack shares, kept on each attempt so that failures can be counted per shared
-- trait with one indexed range scan: the card's issuer prefix (first six digits, which PCI
-- DSS allows to keep beside the last four), the email's domain and the client's network
-- (IPv4 /24, IPv6 /48).
ALTER TABLE payments ADD COLUMN card_bin TEXT;
ALTER TABLE payments ADD COLUMN email_domain TEXT;
ALTER TABLE payments ADD COLUMN client_net TEXT;
CREATE INDEX payments_bin_created ON payments (card_bin, created_at);
CREATE INDEX payments_domain_created ON payments (email_domain, created_at);
CREATE INDEX payments_net_created ON payments (client_net, created_at);
-- Failures alone, for the shop-wide surge check (a partial index stays small).
CREATE INDEX payments_failed_created ON payments (created_at) WHERE status = 'failed';

-- When the shop-wide failure rate leaves its own baseline, the screening narrows to what the
-- failures share. Each engagement is a row the console shows: when, why, what tightened.
CREATE TABLE screening_events (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    started_at  BIGINT NOT NULL,
    -- Extended while the surge lasts; an engagement ends when it is not extended.
    until_at    BIGINT NOT NULL,
    -- Why: the failures counted and the baseline they were compared with.
    detail      TEXT NOT NULL,
    -- What tightened: a JSON list of {kind, value, failures, share}.
    tightened   TEXT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX screening_events_until ON screening_events (until_at);
