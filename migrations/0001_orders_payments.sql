-- Portable schema: it runs unchanged on SQLite and PostgreSQL through sqlx::Any.
-- Money is integer minor units plus an ISO 4217 code; times are epoch milliseconds (UTC);
-- ids, enums and JSON are TEXT.

CREATE TABLE orders (
    id                  TEXT PRIMARY KEY,
    order_number        TEXT NOT NULL UNIQUE,
    token_hash          TEXT NOT NULL UNIQUE,
    -- The confirm form's one-time key: a double submit finds the same order.
    idempotency_key     TEXT NOT NULL UNIQUE,
    status              TEXT NOT NULL,
    coins               BIGINT NOT NULL,
    -- The total charged, fee included.
    amount_minor        BIGINT NOT NULL,
    -- The payment method's fee, itemised on the confirm page and the receipt.
    fee_minor           BIGINT NOT NULL DEFAULT 0,
    currency            TEXT NOT NULL,
    -- The same amount in the base currency's minor units, for velocity sums across currencies.
    base_amount_minor   BIGINT NOT NULL,
    tiktok_username     TEXT NOT NULL,
    tiktok_account_id   TEXT NOT NULL,
    tiktok_display_name TEXT NOT NULL,
    email               TEXT NOT NULL,
    payment_method      TEXT NOT NULL,
    client_ip           TEXT NOT NULL,
    -- When the buyer confirmed being at least `min_age` years old.
    age_confirmed_at    BIGINT,
    min_age             BIGINT,
    -- What the buyer's page claimed the price was (never used to charge).
    client_amount_minor BIGINT,
    client_currency     TEXT,
    provider            TEXT NOT NULL,
    provider_session_id TEXT,
    refunded_minor      BIGINT NOT NULL DEFAULT 0,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    expires_at          BIGINT NOT NULL,
    paid_at             BIGINT,
    delivered_at        BIGINT
);
CREATE INDEX orders_status_created ON orders (status, created_at);
CREATE INDEX orders_email_created ON orders (email, created_at);
CREATE INDEX orders_ip_created ON orders (client_ip, created_at);
CREATE INDEX orders_username_created ON orders (tiktok_username, created_at);
CREATE INDEX orders_awaiting_expiry ON orders (expires_at) WHERE status = 'awaiting_payment';
CREATE INDEX orders_created ON orders (created_at);

-- Append-only audit trail of everything that happened to an order.
CREATE TABLE order_events (
    id          TEXT PRIMARY KEY,
    order_id    TEXT NOT NULL REFERENCES orders (id),
    at          BIGINT NOT NULL,
    actor       TEXT NOT NULL,
    kind        TEXT NOT NULL,
    from_status TEXT,
    to_status   TEXT,
    detail      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX order_events_order_at ON order_events (order_id, at);

-- Payment attempts as the provider reported them. Never a card number or CVC.
CREATE TABLE payments (
    id               TEXT PRIMARY KEY,
    order_id         TEXT NOT NULL REFERENCES orders (id),
    provider         TEXT NOT NULL,
    provider_ref     TEXT NOT NULL,
    method           TEXT NOT NULL,
    status           TEXT NOT NULL,
    amount_minor     BIGINT NOT NULL,
    currency         TEXT NOT NULL,
    failure_code     TEXT,
    card_brand       TEXT,
    card_last4       TEXT,
    card_country     TEXT,
    card_fingerprint TEXT,
    -- Copied from the order so that risk signals are single indexed range scans.
    email            TEXT NOT NULL,
    client_ip        TEXT NOT NULL,
    tiktok_username  TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    UNIQUE (provider, provider_ref)
);
CREATE INDEX payments_order ON payments (order_id, created_at);
CREATE INDEX payments_email_created ON payments (email, created_at);
CREATE INDEX payments_ip_created ON payments (client_ip, created_at);
CREATE INDEX payments_fingerprint_created ON payments (card_fingerprint, created_at);
CREATE INDEX payments_username_created ON payments (tiktok_username, created_at);
CREATE INDEX payments_status_created ON payments (status, created_at);

-- Every provider event seen once: a replay finds its id here and does nothing.
CREATE TABLE webhook_events (
    provider     TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    event_type   TEXT NOT NULL,
    order_id     TEXT,
    received_at  BIGINT NOT NULL,
    outcome      TEXT NOT NULL,
    PRIMARY KEY (provider, event_id)
);

CREATE TABLE risk_assessments (
    id         TEXT PRIMARY KEY,
    order_id   TEXT NOT NULL REFERENCES orders (id),
    stage      TEXT NOT NULL,
    score      BIGINT NOT NULL,
    decision   TEXT NOT NULL,
    reasons    TEXT NOT NULL,
    signals    TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX risk_assessments_order ON risk_assessments (order_id, created_at);
CREATE INDEX risk_assessments_created ON risk_assessments (created_at);

-- Block and allow lists.
CREATE TABLE risk_lists (
    id         TEXT PRIMARY KEY,
    list       TEXT NOT NULL,
    kind       TEXT NOT NULL,
    value      TEXT NOT NULL,
    reason     TEXT NOT NULL,
    added_by   TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT
);
CREATE INDEX risk_lists_kind_value ON risk_lists (kind, value);

-- Requests refused by a rate limit: a risk signal that outlives one process.
CREATE TABLE rate_limit_hits (
    id        TEXT PRIMARY KEY,
    client_ip TEXT NOT NULL,
    route     TEXT NOT NULL,
    at        BIGINT NOT NULL
);
CREATE INDEX rate_limit_hits_ip_at ON rate_limit_hits (client_ip, at);

-- Shop-wide circuit breaker state: one row per breaker.
CREATE TABLE circuit_breakers (
    name       TEXT PRIMARY KEY,
    open_until BIGINT NOT NULL,
    opened_at  BIGINT NOT NULL,
    trips      BIGINT NOT NULL DEFAULT 0
);

-- The durable job queue.
CREATE TABLE jobs (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    payload     TEXT NOT NULL,
    -- One live job per key (e.g. one fulfillment per order).
    dedupe_key  TEXT UNIQUE,
    status      TEXT NOT NULL,
    attempts    BIGINT NOT NULL DEFAULT 0,
    run_at      BIGINT NOT NULL,
    lease_until BIGINT,
    locked_by   TEXT,
    last_error  TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX jobs_ready ON jobs (status, run_at);

-- The sandbox payment provider's own records (a real provider keeps these on its side).
CREATE TABLE sandbox_sessions (
    id              TEXT PRIMARY KEY,
    order_reference TEXT NOT NULL UNIQUE,
    description     TEXT NOT NULL,
    amount_minor    BIGINT NOT NULL,
    currency        TEXT NOT NULL,
    method          TEXT NOT NULL,
    status          TEXT NOT NULL,
    -- Last four digits of the card that paid: the sandbox's refund behaviour depends on it.
    paid_last4      TEXT,
    return_url      TEXT NOT NULL,
    webhook_url     TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL
);

CREATE TABLE sandbox_refunds (
    id              TEXT PRIMARY KEY,
    session_id      TEXT NOT NULL REFERENCES sandbox_sessions (id),
    idempotency_key TEXT NOT NULL UNIQUE,
    amount_minor    BIGINT NOT NULL,
    currency        TEXT NOT NULL,
    status          TEXT NOT NULL,
    created_at      BIGINT NOT NULL
);

-- The sandbox supplier's records: how often a flaky username was tried, and the ledger of
-- credits keyed by order (a repeated credit returns the first).
CREATE TABLE sandbox_supplier_calls (
    call_key TEXT PRIMARY KEY,
    calls    BIGINT NOT NULL
);

CREATE TABLE sandbox_ledger (
    order_id   TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    coins      BIGINT NOT NULL,
    credit_ref TEXT NOT NULL,
    credited_at BIGINT NOT NULL
);

-- Sandbox gift cards: codes GIFT-<balance>-<anything>, balance in the paying session's currency.
CREATE TABLE sandbox_gift_cards (
    code            TEXT PRIMARY KEY,
    currency        TEXT NOT NULL,
    remaining_minor BIGINT NOT NULL
);

-- Sandbox crypto quotes: an address and an exact amount, valid until expires_at.
CREATE TABLE sandbox_crypto_quotes (
    session_id   TEXT PRIMARY KEY REFERENCES sandbox_sessions (id),
    payment_id   TEXT NOT NULL,
    address      TEXT NOT NULL,
    amount_minor BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    created_at   BIGINT NOT NULL
);
