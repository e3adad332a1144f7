-- Console administration (staff, block and allow lists, history).
-- Portable like 0001: BIGINT times (epoch ms), TEXT ids.

-- A setup link may belong to one staff member: an admin adds someone, or resets their
-- password, and the link lets that person choose their own password. NULL is the first-admin
-- link logged at a start with no staff at all.
ALTER TABLE staff_setup_tokens ADD COLUMN staff_id TEXT REFERENCES staff (id);
CREATE INDEX staff_setup_tokens_staff ON staff_setup_tokens (staff_id);

-- Ending a list entry by hand sets its expiry to that moment (so matching needs no change)
-- and records who ended it, so the page can tell "removed by" from "expired".
ALTER TABLE risk_lists ADD COLUMN removed_by TEXT;
ALTER TABLE risk_lists ADD COLUMN removed_at BIGINT;
CREATE INDEX risk_lists_created ON risk_lists (created_at);

-- The history page pages newest first and filters by action.
CREATE INDEX audit_log_action_at ON audit_log (action, at);
