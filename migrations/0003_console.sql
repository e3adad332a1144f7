-- The support console: staff accounts, their sessions, sign-in throttling, two-factor
-- recovery codes, the one-time setup link, notes on orders, and the staff audit log.
-- Portable like 0001: BIGINT times (epoch ms), TEXT ids and enums.

CREATE TABLE staff (
    id                  TEXT PRIMARY KEY,
    -- Stored in lower case: one person, one key.
    email               TEXT NOT NULL UNIQUE,
    -- 'agent' or 'admin'.
    role                TEXT NOT NULL,
    -- argon2id in PHC form.
    password_hash       TEXT NOT NULL,
    password_changed_at BIGINT NOT NULL,
    -- Base32 TOTP secret once enrolment is confirmed; NULL when two-factor is off.
    totp_secret         TEXT,
    -- The last accepted TOTP time step: a code is never accepted twice.
    totp_last_step      BIGINT,
    disabled_at         BIGINT,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);

-- Server-side sessions. The cookie holds a random token; only its SHA-256 is stored.
CREATE TABLE staff_sessions (
    id_hash      TEXT PRIMARY KEY,
    staff_id     TEXT NOT NULL REFERENCES staff (id),
    -- 'totp': password accepted, waiting for the second factor; 'active': signed in.
    stage        TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    client_ip    TEXT NOT NULL,
    user_agent   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX staff_sessions_staff ON staff_sessions (staff_id);

-- Failed sign-ins per typed email (known or not, so that answers never tell them apart).
CREATE TABLE staff_login_throttle (
    email        TEXT PRIMARY KEY,
    failures     BIGINT NOT NULL DEFAULT 0,
    locked_until BIGINT,
    updated_at   BIGINT NOT NULL
);

CREATE TABLE staff_recovery_codes (
    id         TEXT PRIMARY KEY,
    staff_id   TEXT NOT NULL REFERENCES staff (id),
    code_hash  TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX staff_recovery_codes_staff ON staff_recovery_codes (staff_id);

-- One-time links that let the first admin set a password. Only the hash is kept.
CREATE TABLE staff_setup_tokens (
    token_hash TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);

-- Agents' notes on orders (internal; never shown to the buyer).
CREATE TABLE notes (
    id         TEXT PRIMARY KEY,
    order_id   TEXT NOT NULL REFERENCES orders (id),
    author     TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX notes_order ON notes (order_id, created_at);

-- Who did what in the console and to staff accounts: sign-ins, failures, lock-outs,
-- enrolments, and (later) settings changes with their old and new values.
CREATE TABLE audit_log (
    id        TEXT PRIMARY KEY,
    at        BIGINT NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    subject   TEXT NOT NULL DEFAULT '',
    detail    TEXT NOT NULL DEFAULT '',
    old_value TEXT,
    new_value TEXT,
    client_ip TEXT
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_subject_at ON audit_log (subject, at);
