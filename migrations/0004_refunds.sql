-- Refund requests from buyers, and every refund the shop asks the provider for (requested by
-- an agent, or automatic after a block, a rejection or a failed delivery).

CREATE TABLE refund_requests (
    id               TEXT PRIMARY KEY,
    order_id         TEXT NOT NULL REFERENCES orders (id),
    reason           TEXT NOT NULL,
    message          TEXT NOT NULL,
    -- open → approved (a refund is under way) → refunded; open → denied; approved → failed → approved…
    status           TEXT NOT NULL,
    decided_by       TEXT,
    decision_message TEXT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
-- One open (undecided) request per order.
CREATE UNIQUE INDEX refund_requests_one_open ON refund_requests (order_id) WHERE status IN ('open', 'approved', 'failed');
CREATE INDEX refund_requests_status_created ON refund_requests (status, created_at);
CREATE INDEX refund_requests_order ON refund_requests (order_id, created_at);

CREATE TABLE refunds (
    id                 TEXT PRIMARY KEY,
    order_id           TEXT NOT NULL REFERENCES orders (id),
    request_id         TEXT REFERENCES refund_requests (id),
    amount_minor       BIGINT NOT NULL,
    currency           TEXT NOT NULL,
    -- pending (asked) → succeeded | failed
    status             TEXT NOT NULL,
    provider_refund_id TEXT UNIQUE,
    failure            TEXT,
    created_by         TEXT NOT NULL,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL
);
CREATE INDEX refunds_order ON refunds (order_id, created_at);

-- Delivery-time estimates read the latest deliveries.
CREATE INDEX orders_delivered ON orders (delivered_at);

-- Risk signals count failed payments per order, email, IP, card and username: partial indexes
-- keep each count a short range scan of that key's failures only, however many other
-- payments the shop has (measured by benches/risk_scoring.rs).
CREATE INDEX payments_failed_order ON payments (order_id, created_at) WHERE status = 'failed';
CREATE INDEX payments_failed_email ON payments (email, created_at) WHERE status = 'failed';
CREATE INDEX payments_failed_ip ON payments (client_ip, created_at) WHERE status = 'failed';
CREATE INDEX payments_failed_card ON payments (card_fingerprint, created_at) WHERE status = 'failed';
CREATE INDEX payments_failed_username ON payments (tiktok_username, created_at) WHERE status = 'failed';
CREATE INDEX orders_email_paid ON orders (email, id) WHERE paid_at IS NOT NULL;
