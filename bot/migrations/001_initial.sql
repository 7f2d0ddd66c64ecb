-- Chats, users, every stored message, the /analyze cache and recorded error events.
CREATE TABLE IF NOT EXISTS chats (
    chat_id    bigint PRIMARY KEY,
    chat_type  text NOT NULL DEFAULT '',
    title      text,
    config     jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS users (
    user_id    bigint PRIMARY KEY,
    username   text,
    first_name text,
    last_name  text,
    city       text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS messages (
    id         bigserial PRIMARY KEY,
    chat_id    bigint NOT NULL,
    message_id bigint NOT NULL,
    user_id    bigint,
    text       text,
    timestamp  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (chat_id, message_id)
);
CREATE INDEX IF NOT EXISTS messages_chat_id_timestamp_idx ON messages (chat_id, timestamp);

CREATE TABLE IF NOT EXISTS analysis_cache (
    id           bigserial PRIMARY KEY,
    chat_id      bigint NOT NULL,
    period       text NOT NULL,
    content_hash text NOT NULL,
    summary      text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (chat_id, period, content_hash)
);

CREATE TABLE IF NOT EXISTS error_events (
    id      bigserial PRIMARY KEY,
    ts      timestamptz NOT NULL DEFAULT now(),
    code    text NOT NULL,
    logger  text,
    message text,
    chat_id bigint
);
CREATE INDEX IF NOT EXISTS error_events_ts_idx ON error_events (ts);
