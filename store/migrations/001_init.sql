-- 001_init.sql - conversations, turns, messages, model calls and tool calls.
--
-- Every row below a turn carries the turn's id and the turn's start time: the start time is the
-- partition key of every growing table (monthly RANGE partitions plus a DEFAULT one), and
-- (turn_id, ordinal, start time) is the key that makes a replayed turn insert nothing twice.
-- Money is integer micro-units of `currency`; the USD->INR rate used is kept on every money row.

CREATE TABLE conversations (
    id text PRIMARY KEY CHECK (id ~ '^[0-9a-f]{32}$'),
    user_sub text NOT NULL DEFAULT '' CHECK (length(user_sub) <= 512),
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    CHECK (updated_at >= created_at)
);
CREATE INDEX conversations_user_idx ON conversations (user_sub, updated_at DESC);
CREATE INDEX conversations_updated_idx ON conversations (updated_at);

CREATE TABLE turns (
    id text NOT NULL CHECK (id ~ '^[0-9a-f]{32}$'),
    started_at timestamptz NOT NULL,
    conversation_id text NOT NULL REFERENCES conversations (id),
    client_msg_id text NOT NULL DEFAULT '' CHECK (length(client_msg_id) <= 256),
    finish_reason text NOT NULL
        CHECK (finish_reason IN ('stop', 'length', 'cancelled', 'error', 'content_filter',
                                 'tool_calls')),
    -- byte offset in the answer (the assistant message) where delta seq i+1 ends: resume
    -- re-sends the deltas after any seq exactly as they were split
    delta_ends integer[] NOT NULL DEFAULT '{}' CHECK (array_position(delta_ends, NULL) IS NULL),
    answer_bytes integer NOT NULL DEFAULT 0 CHECK (answer_bytes >= 0),
    first_token_ms bigint CHECK (first_token_ms >= 0),
    total_ms bigint NOT NULL CHECK (total_ms >= 0),
    input_tokens bigint NOT NULL CHECK (input_tokens >= 0),
    cached_input_tokens bigint NOT NULL CHECK (cached_input_tokens >= 0),
    cache_write_tokens bigint NOT NULL CHECK (cache_write_tokens >= 0),
    output_tokens bigint NOT NULL CHECK (output_tokens >= 0),
    reasoning_tokens bigint NOT NULL CHECK (reasoning_tokens >= 0),
    cost_micros bigint NOT NULL CHECK (cost_micros >= 0),
    currency text NOT NULL CHECK (currency IN ('INR', 'USD')),
    usd_to_inr_micros bigint NOT NULL CHECK (usd_to_inr_micros > 0),
    CHECK (cached_input_tokens + cache_write_tokens <= input_tokens),
    CHECK (reasoning_tokens <= output_tokens),
    CHECK (coalesce(array_length(delta_ends, 1), 0) = 0
           OR delta_ends[array_length(delta_ends, 1)] = answer_bytes),
    PRIMARY KEY (id, started_at)
) PARTITION BY RANGE (started_at);
CREATE INDEX turns_conversation_idx ON turns (conversation_id, started_at);
CREATE INDEX turns_started_idx ON turns (started_at);

-- user (ordinal 0), assistant (1), tool messages (2...) of a turn; created_at is the turn's start
CREATE TABLE messages (
    turn_id text NOT NULL,
    ordinal integer NOT NULL CHECK (ordinal >= 0),
    created_at timestamptz NOT NULL,
    conversation_id text NOT NULL REFERENCES conversations (id),
    role text NOT NULL CHECK (role IN ('user', 'assistant', 'tool')),
    content text NOT NULL,
    PRIMARY KEY (turn_id, ordinal, created_at),
    FOREIGN KEY (turn_id, created_at) REFERENCES turns (id, started_at)
) PARTITION BY RANGE (created_at);
CREATE INDEX messages_conversation_idx ON messages (conversation_id, created_at, ordinal);

-- every call to a model made for a turn: retries, fallbacks and guardrail calls included
CREATE TABLE llm_calls (
    turn_id text NOT NULL,
    ordinal integer NOT NULL CHECK (ordinal >= 0),
    started_at timestamptz NOT NULL, -- the turn's start
    conversation_id text NOT NULL,
    provider text NOT NULL CHECK (provider <> '' AND length(provider) <= 64),
    model text NOT NULL CHECK (model <> '' AND length(model) <= 256),
    tier text NOT NULL DEFAULT 'standard' CHECK (tier <> '' AND length(tier) <= 64),
    attempt integer NOT NULL CHECK (attempt >= 1),
    role text NOT NULL
        CHECK (role IN ('model', 'retry', 'fallback', 'guardrail', 'escalation')),
    status text NOT NULL CHECK (status IN ('ok', 'error', 'cancelled')),
    error text CHECK (length(error) <= 1024),
    http_status integer CHECK (http_status BETWEEN 100 AND 599),
    input_tokens bigint NOT NULL CHECK (input_tokens >= 0),
    cached_input_tokens bigint NOT NULL CHECK (cached_input_tokens >= 0),
    cache_write_tokens bigint NOT NULL CHECK (cache_write_tokens >= 0),
    output_tokens bigint NOT NULL CHECK (output_tokens >= 0),
    reasoning_tokens bigint NOT NULL CHECK (reasoning_tokens >= 0),
    usage_reported boolean NOT NULL,
    ttft_ms bigint CHECK (ttft_ms >= 0),
    duration_ms bigint NOT NULL CHECK (duration_ms >= 0),
    cost_micros bigint NOT NULL CHECK (cost_micros >= 0),
    currency text NOT NULL CHECK (currency IN ('INR', 'USD')),
    usd_to_inr_micros bigint NOT NULL CHECK (usd_to_inr_micros > 0),
    CHECK (cached_input_tokens + cache_write_tokens <= input_tokens),
    CHECK (reasoning_tokens <= output_tokens),
    PRIMARY KEY (turn_id, ordinal, started_at),
    FOREIGN KEY (turn_id, started_at) REFERENCES turns (id, started_at)
) PARTITION BY RANGE (started_at);
CREATE INDEX llm_calls_conversation_idx ON llm_calls (conversation_id, started_at);
CREATE INDEX llm_calls_model_idx ON llm_calls (provider, model, started_at);
CREATE INDEX llm_calls_started_idx ON llm_calls (started_at);

CREATE TABLE tool_calls (
    turn_id text NOT NULL,
    ordinal integer NOT NULL CHECK (ordinal >= 0),
    started_at timestamptz NOT NULL, -- the turn's start
    conversation_id text NOT NULL,
    name text NOT NULL CHECK (name <> '' AND length(name) <= 256),
    arguments jsonb NOT NULL,
    result_bytes bigint NOT NULL CHECK (result_bytes >= 0),
    cache_hit boolean NOT NULL,
    duration_ms bigint NOT NULL CHECK (duration_ms >= 0),
    status text NOT NULL CHECK (status IN ('ok', 'error', 'timeout', 'cancelled')),
    cost_micros bigint NOT NULL DEFAULT 0 CHECK (cost_micros >= 0),
    PRIMARY KEY (turn_id, ordinal, started_at),
    FOREIGN KEY (turn_id, started_at) REFERENCES turns (id, started_at)
) PARTITION BY RANGE (started_at);
CREATE INDEX tool_calls_conversation_idx ON tool_calls (conversation_id, started_at);
CREATE INDEX tool_calls_name_idx ON tool_calls (name, started_at);

-- DEFAULT partitions catch any row outside the monthly ones, so an insert never fails for want
-- of a partition.
CREATE TABLE turns_default PARTITION OF turns DEFAULT;
CREATE TABLE messages_default PARTITION OF messages DEFAULT;
CREATE TABLE llm_calls_default PARTITION OF llm_calls DEFAULT;
CREATE TABLE tool_calls_default PARTITION OF tool_calls DEFAULT;
