-- Staff sign-in hardening (issue 14).
--
-- Failed passwords lock an (email, source address) pair, not the whole account, so a stranger
-- cannot lock a staff member out from elsewhere. `staff_login_throttle` (per typed email)
-- now only counts failures from every address together, to slow an account down under a
-- distributed attack; it no longer locks.
CREATE TABLE staff_login_sources (
    email        TEXT NOT NULL,
    client_ip    TEXT NOT NULL,
    failures     BIGINT NOT NULL DEFAULT 0,
    locked_until BIGINT,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (email, client_ip)
);
CREATE INDEX staff_login_sources_updated ON staff_login_sources (updated_at);
UPDATE staff_login_throttle SET locked_until = NULL;

-- Wrong second-factor codes per account, counted apart from passwords: a correct password
-- does not reset them, only a correct code does.
CREATE TABLE staff_code_throttle (
    staff_id     TEXT PRIMARY KEY REFERENCES staff (id),
    failures     BIGINT NOT NULL DEFAULT 0,
    locked_until BIGINT,
    updated_at   BIGINT NOT NULL
);

-- Recovery codes are now argon2id PHC strings (each with its own salt) of the code's
-- SHA-256; older rows hold the bare SHA-256 and are wrapped at start-up. TOTP seeds are
-- now encrypted ("enc1:…"); clear seeds are encrypted at start-up. Both in code: SQL cannot
-- compute either.
