-- Buyer ↔ support conversations, one per order.

CREATE TABLE support_messages (
    id         TEXT PRIMARY KEY,
    order_id   TEXT NOT NULL REFERENCES orders (id),
    -- 'buyer', or 'staff:<email>' for an agent's reply.
    author     TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX support_messages_order ON support_messages (order_id, created_at);

-- One row per conversation: open while the buyer's last message has no answer.
CREATE TABLE support_threads (
    order_id        TEXT PRIMARY KEY REFERENCES orders (id),
    status          TEXT NOT NULL,
    waiting_since   BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX support_threads_open ON support_threads (status, waiting_since);
