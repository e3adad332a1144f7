-- Chargebacks (Stripe disputes) and early fraud warnings, each tied to the order whose payment
-- they are about. A dispute's evidence, once an agent submits it, is kept as sent.

CREATE TABLE disputes (
    id                    TEXT PRIMARY KEY,
    order_id              TEXT NOT NULL REFERENCES orders (id),
    provider              TEXT NOT NULL,
    amount_minor          BIGINT NOT NULL,
    currency              TEXT NOT NULL,
    reason                TEXT NOT NULL,
    -- The provider's status: warning_needs_response, needs_response, under_review, won, lost…
    status                TEXT NOT NULL,
    evidence_due_by       BIGINT,
    evidence_submitted_at BIGINT,
    evidence_submitted_by TEXT,
    evidence              TEXT,
    created_at            BIGINT NOT NULL,
    updated_at            BIGINT NOT NULL
);
CREATE INDEX disputes_order ON disputes (order_id);
CREATE INDEX disputes_created ON disputes (created_at);

CREATE TABLE fraud_warnings (
    id         TEXT PRIMARY KEY,
    order_id   TEXT NOT NULL REFERENCES orders (id),
    provider   TEXT NOT NULL,
    fraud_type TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX fraud_warnings_order ON fraud_warnings (order_id);
