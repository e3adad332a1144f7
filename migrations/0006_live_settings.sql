-- Settings admins change in the console without a deploy (risk rules, catalog prices). A row
-- here overrides the config file's value of the same name. Every instance compares each
-- row's version with the one it holds and reloads on a difference, so versions only go up:
-- reverting to the file's value keeps the row with a NULL value and the next version.
CREATE TABLE live_settings (
    name       TEXT PRIMARY KEY,
    -- The whole value as JSON (e.g. every risk threshold and weight), never a partial patch;
    -- NULL means "the config file's value".
    value      TEXT,
    -- Goes up by one with every save; a save names the version it was based on.
    version    BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    updated_by TEXT NOT NULL
);
