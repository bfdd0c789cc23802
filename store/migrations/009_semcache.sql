-- 009_semcache.sql - the semantic cache's entries (issue 13 item 3), shared by every pod: each
-- process keeps its own vector index and warms it from here at start, then reads the rows other
-- pods wrote (by id, a few seconds apart). UNLOGGED: a cache may be lost in a crash (it refills)
-- and its writes should not cost WAL or replication.
--
-- part: the key every hit must share (16 hex digits of a hash of the query type, agent, prompt
-- version, model, catalog version and the embeddings model), so a new prompt or catalog version
-- never reads the old answers. An answer is offered again for the same question: the row is
-- replaced and takes a new id (id = DEFAULT), so the other pods see it.
CREATE UNLOGGED TABLE semantic_cache (
    id bigserial PRIMARY KEY,
    part text NOT NULL CHECK (part ~ '^[0-9a-f]{16}$'),
    query text NOT NULL CHECK (length(query) <= 4096),
    embedding real[] NOT NULL
        CHECK (cardinality(embedding) BETWEEN 1 AND 4096 AND array_position(embedding, NULL) IS NULL),
    answer text NOT NULL,
    cost_micros bigint NOT NULL DEFAULT 0 CHECK (cost_micros >= 0),
    currency text NOT NULL CHECK (currency IN ('INR', 'USD')),
    label text NOT NULL DEFAULT '' CHECK (length(label) <= 256), -- type/agent/prompt/model
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    UNIQUE (part, query)
);
CREATE INDEX semantic_cache_expires_idx ON semantic_cache (expires_at);
