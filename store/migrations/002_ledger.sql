-- 002_ledger.sql - the per-turn cost ledger: one row per cost line of a turn (each model call,
-- retry, fallback, guardrail call, cascade escalation, tool call), and a deferred check that a
-- turn's lines add up to the turn's cost.

CREATE TABLE ledger (
    turn_id text NOT NULL,
    line integer NOT NULL CHECK (line >= 0),
    created_at timestamptz NOT NULL, -- the turn's start
    conversation_id text NOT NULL,
    kind text NOT NULL
        CHECK (kind IN ('model', 'retry', 'fallback', 'guardrail', 'escalation', 'tool')),
    description text NOT NULL CHECK (length(description) <= 512),
    provider text,
    model text,
    amount_micros bigint NOT NULL CHECK (amount_micros >= 0),
    currency text NOT NULL CHECK (currency IN ('INR', 'USD')),
    usd_to_inr_micros bigint NOT NULL CHECK (usd_to_inr_micros > 0),
    PRIMARY KEY (turn_id, line, created_at),
    FOREIGN KEY (turn_id, created_at) REFERENCES turns (id, started_at)
) PARTITION BY RANGE (created_at);
CREATE INDEX ledger_conversation_idx ON ledger (conversation_id, created_at);
CREATE INDEX ledger_created_idx ON ledger (created_at);
CREATE INDEX ledger_model_idx ON ledger (provider, model, created_at);
CREATE TABLE ledger_default PARTITION OF ledger DEFAULT;

-- Runs at commit (deferred): the sum of a turn's ledger lines must equal turns.cost_micros.
CREATE FUNCTION trilemma_check_turn_cost() RETURNS trigger LANGUAGE plpgsql AS $$
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
      FROM ledger WHERE turn_id = tid AND created_at = ts;
    IF got <> want THEN
        RAISE EXCEPTION 'turn %: ledger lines sum to % but the turn costs %', tid, got, want
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER turns_cost_matches_ledger
    AFTER INSERT OR UPDATE OF cost_micros ON turns
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
    EXECUTE FUNCTION trilemma_check_turn_cost('turns');
CREATE CONSTRAINT TRIGGER ledger_sums_to_turn_cost
    AFTER INSERT OR UPDATE OR DELETE ON ledger
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
    EXECUTE FUNCTION trilemma_check_turn_cost('ledger');
