-- 010_evals.sql - the vibe-check panel (docs/evals.md): sessions of paired answers from two eval
-- runs over the same golden set, and the panel's blind votes. The versions' names are stored
-- with the session for the analysis (trilemma-eval vibe) and never sent to the voting page.

CREATE TABLE vibe_sessions (
    id bigserial PRIMARY KEY,
    name text NOT NULL DEFAULT '',
    set_name text NOT NULL DEFAULT '',
    version_a text NOT NULL, -- the eval run (configuration) whose answers are "a"
    version_b text NOT NULL,
    -- a secret per session: which side each answer is shown on, and in which order a voter
    -- sees the cases, are drawn from it, so a voter cannot work them out
    salt text NOT NULL DEFAULT md5(random()::text || clock_timestamp()::text),
    created_by text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE vibe_items (
    session_id bigint NOT NULL REFERENCES vibe_sessions (id) ON DELETE CASCADE,
    case_id text NOT NULL,
    query_type text NOT NULL DEFAULT '',
    query text NOT NULL,
    history jsonb NOT NULL DEFAULT '[]',
    answer_a text NOT NULL,
    answer_b text NOT NULL,
    PRIMARY KEY (session_id, case_id)
);

CREATE TABLE vibe_votes (
    id bigserial PRIMARY KEY,
    session_id bigint NOT NULL,
    case_id text NOT NULL,
    voter text NOT NULL,
    -- resolved from the side the voter picked: a or b (the versions), a tie, or both bad
    choice text NOT NULL CHECK (choice IN ('a', 'b', 'tie', 'both_bad')),
    a_on_left boolean NOT NULL, -- how the pair was shown to this voter
    created_at timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (session_id, case_id) REFERENCES vibe_items ON DELETE CASCADE,
    UNIQUE (session_id, case_id, voter)
);

-- Whether version a is shown on the left to this voter for this case: one bit of
-- md5(salt / voter / case), so the sides are random per voter and per case, and stable.
CREATE FUNCTION vibe_a_on_left(salt text, voter text, case_id text) RETURNS boolean
    LANGUAGE sql IMMUTABLE STRICT
    AS $$ SELECT get_byte(decode(md5(salt || '/' || voter || '/' || case_id), 'hex'), 0) % 2 = 0 $$;
