-- What `db truncate` (the retention) deletes from messages and error_events is counted here first, per hour,
-- so that `usage` still compares a period with the one before once the messages of that one are gone.
CREATE TABLE IF NOT EXISTS usage_rollup (
    hour     timestamptz NOT NULL,
    chat_id  bigint NOT NULL,
    user_id  bigint,
    command  text,              -- the command's name, lower case; NULL for any other message
    messages integer NOT NULL
);
CREATE INDEX IF NOT EXISTS usage_rollup_hour_idx ON usage_rollup (hour);

CREATE TABLE IF NOT EXISTS error_rollup (
    hour   timestamptz NOT NULL,
    errors integer NOT NULL
);
CREATE INDEX IF NOT EXISTS error_rollup_hour_idx ON error_rollup (hour);
