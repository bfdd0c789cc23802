-- 008_caches.sql - the cache layers' shared tier and their savings on the ledger.
--
-- cache_entries: the exact response cache and the tool cache's optional shared tier, one row per
-- key, read by every pod on a miss of its own per-worker LRU. UNLOGGED: a cache may be lost in a
-- crash (it refills), and its writes should not cost WAL or replication. Expired rows are
-- ignored by reads and purged a few at a time by writes.
CREATE UNLOGGED TABLE cache_entries (
    layer text NOT NULL CHECK (layer IN ('exact', 'tool')),
    key text NOT NULL CHECK (key ~ '^[0-9a-f]{64}$'),
    value text NOT NULL,
    cost_micros bigint NOT NULL DEFAULT 0 CHECK (cost_micros >= 0),
    currency text NOT NULL CHECK (currency IN ('INR', 'USD')),
    label text NOT NULL DEFAULT '' CHECK (length(label) <= 256), -- agent/prompt/model or tool
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (layer, key)
);
CREATE INDEX cache_entries_expires_idx ON cache_entries (expires_at);

-- A cache hit is a ledger line of kind cache_saving: what the avoided calls would have cost, as
-- a negative amount (0 for a free tool, still counted), with the layer that served it. It is
-- never part of the turn's cost: the deferred check sums every other line.
ALTER TABLE ledger ADD COLUMN cache_layer text
    CHECK (cache_layer IN ('exact', 'semantic', 'tool', 'prompt'));
ALTER TABLE ledger DROP CONSTRAINT ledger_kind_check;
ALTER TABLE ledger ADD CONSTRAINT ledger_kind_check
    CHECK (kind IN ('model', 'retry', 'fallback', 'guardrail', 'escalation', 'tool', 'classifier',
                    'judge', 'planner', 'cache_saving'));
ALTER TABLE ledger DROP CONSTRAINT ledger_amount_micros_check;
ALTER TABLE ledger ADD CONSTRAINT ledger_amount_micros_check
    CHECK (CASE WHEN kind = 'cache_saving' THEN amount_micros <= 0 AND cache_layer IS NOT NULL
                ELSE amount_micros >= 0 END);
CREATE INDEX ledger_savings_idx ON ledger (created_at) WHERE kind = 'cache_saving';

CREATE OR REPLACE FUNCTION trilemma_check_turn_cost() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    tid text;
    ts timestamptz;
    want bigint;
    got bigint;
BEGIN
    IF TG_ARGV[0] = 'turns' THEN
        tid := NEW.id;
        ts := NEW.started_at;
    ELSIF TG_OP = 'DELETE' THEN
        tid := OLD.turn_id;
        ts := OLD.created_at;
    ELSE
        tid := NEW.turn_id;
        ts := NEW.created_at;
    END IF;
    SELECT cost_micros INTO want FROM turns WHERE id = tid AND started_at = ts;
    IF NOT FOUND THEN
        RETURN NULL; -- the turn itself is gone (deleted in the same transaction)
    END IF;
    SELECT coalesce(sum(amount_micros), 0) INTO got
      FROM ledger WHERE turn_id = tid AND created_at = ts AND kind <> 'cache_saving';
    IF got <> want THEN
        RAISE EXCEPTION 'turn %: ledger lines sum to % but the turn costs %', tid, got, want
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END
$$;
