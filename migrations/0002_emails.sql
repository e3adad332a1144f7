-- The email outbox: every email to a buyer is written here in the transaction that causes it,
-- rendered once (so a resend is the same message, Message-ID included), and delivered by a
-- `send_email` job. Portable like 0001: BIGINT epoch-millisecond times, TEXT ids.

CREATE TABLE emails (
    id           TEXT PRIMARY KEY,
    -- NULL for mail that is not about one order.
    order_id     TEXT REFERENCES orders (id),
    kind         TEXT NOT NULL,
    -- Normally "{order_id}:{kind}": at most one email of a kind per order. The order-link
    -- email adds a time bucket, so asking again soon sends nothing new.
    dedupe_key   TEXT NOT NULL UNIQUE,
    to_address   TEXT NOT NULL,
    subject      TEXT NOT NULL,
    text_body    TEXT NOT NULL,
    html_body    TEXT NOT NULL,
    -- Fixed when the row is written: a resend after a crash carries the same Message-ID.
    message_id   TEXT NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    sent_at      BIGINT,
    attempts     BIGINT NOT NULL DEFAULT 0,
    last_error   TEXT,
    -- Set when the email can never be sent (an address the mail library refuses), so it is
    -- not retried again; transport failures leave it NULL and the email queued.
    abandoned_at BIGINT
);
CREATE INDEX emails_order ON emails (order_id, created_at);
CREATE INDEX emails_unsent ON emails (created_at) WHERE sent_at IS NULL;
