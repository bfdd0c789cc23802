-- 011_capacity.sql - provisioned capacity (issue 15): the tier and the deployment of every model
-- call on its ledger line, and the pods' heartbeat.
--
-- A call is served by pay-as-you-go (tier 'standard': the provider's normal route, priced per
-- token) or by a provisioned deployment (tier 'provisioned': the agents file's [capacity NAME],
-- a fixed price per hour and a lower or zero per-token price). Ledger lines of tool calls and
-- cache savings are 'standard' with no deployment. The hourly price itself is never a ledger
-- line: the cost reports apportion it to the turns each hour served (docs/store.md).

ALTER TABLE ledger ADD COLUMN tier text NOT NULL DEFAULT 'standard'
    CHECK (tier IN ('standard', 'provisioned'));
ALTER TABLE ledger ADD COLUMN deployment text
    CHECK (deployment ~ '^[a-z0-9_-]{1,31}$');
ALTER TABLE ledger ADD CONSTRAINT ledger_deployment_tier_check
    CHECK ((tier = 'provisioned') = (deployment IS NOT NULL));

ALTER TABLE llm_calls ADD COLUMN deployment text
    CHECK (deployment ~ '^[a-z0-9_-]{1,31}$');
ALTER TABLE llm_calls ADD CONSTRAINT llm_calls_deployment_tier_check
    CHECK ((tier = 'provisioned') = (deployment IS NOT NULL));
-- the apportioning reads the provisioned calls of a range, per deployment and hour
CREATE INDEX llm_calls_deployment_idx ON llm_calls (deployment, started_at)
    WHERE deployment IS NOT NULL;

-- One row per live process (pod): its heartbeat (store_pods_beat) upserts it with now() and
-- deletes the rows not seen for a while, so every pod can count the live ones and take its share
-- of a provisioned deployment's capacity. UNLOGGED: lost in a crash, refilled by the next beats.
CREATE UNLOGGED TABLE pods (
    id text PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 255),
    seen_at timestamptz NOT NULL
);
