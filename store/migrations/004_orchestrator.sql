-- 004_orchestrator.sql - what the orchestrator decides for a turn: its query type, the agent
-- that answered and the flags of its checks (turns); which agent and prompt version made each
-- model call, and the call roles of a plan (classifier, judge, planner) beside the relay's.

ALTER TABLE turns
    ADD COLUMN query_type text NOT NULL DEFAULT '' CHECK (length(query_type) <= 32),
    ADD COLUMN agent text NOT NULL DEFAULT '' CHECK (length(agent) <= 64),
    ADD COLUMN flags text[] NOT NULL DEFAULT '{}'
        CHECK (array_position(flags, NULL) IS NULL AND cardinality(flags) <= 16);

ALTER TABLE llm_calls
    ADD COLUMN agent text NOT NULL DEFAULT '' CHECK (length(agent) <= 64),
    ADD COLUMN prompt_version text NOT NULL DEFAULT '' CHECK (length(prompt_version) <= 64);

ALTER TABLE llm_calls DROP CONSTRAINT llm_calls_role_check;
ALTER TABLE llm_calls ADD CONSTRAINT llm_calls_role_check
    CHECK (role IN ('model', 'retry', 'fallback', 'guardrail', 'escalation', 'classifier',
                    'judge', 'planner'));

ALTER TABLE ledger DROP CONSTRAINT ledger_kind_check;
ALTER TABLE ledger ADD CONSTRAINT ledger_kind_check
    CHECK (kind IN ('model', 'retry', 'fallback', 'guardrail', 'escalation', 'tool', 'classifier',
                    'judge', 'planner'));

CREATE INDEX turns_flagged_idx ON turns USING gin (flags);
