-- 006_golden.sql - the golden set: cases for the evals, most of them taken from traced production
-- turns by the debugging dashboard (POST /v1/golden). A case starts as a 'candidate' and a
-- reviewer accepts or retires it; case_json holds the case in the evals/ JSONL format (query,
-- history, expected query type and tools, tool results as fixtures, reference answer).

CREATE TABLE golden_cases (
    id bigserial PRIMARY KEY,
    set_name text NOT NULL DEFAULT 'production',
    status text NOT NULL DEFAULT 'candidate'
        CHECK (status IN ('candidate', 'accepted', 'retired')),
    source_turn_id text, -- the traced turn it came from (32 hex), NULL if hand-made
    case_json jsonb NOT NULL,
    note text,
    added_by text, -- who: the admin token holder's label, or 'dashboard'
    created_at timestamptz NOT NULL DEFAULT now(),
    reviewed_at timestamptz,
    reviewed_by text
);
-- one case per production turn: adding the same turn twice is a conflict, not a second case
CREATE UNIQUE INDEX golden_cases_source_turn_idx ON golden_cases (source_turn_id)
    WHERE source_turn_id IS NOT NULL;
