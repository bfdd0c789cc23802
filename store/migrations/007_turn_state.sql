-- 007_turn_state.sql - turns that are running somewhere (docs/store.md, "Running turns").
--
-- A row is written when a turn starts (by the process running it, without waiting for it), its
-- lease renewed while it runs, and it is deleted when the turn's `turns` row is inserted (the
-- commit: trigger below). So a conversation whose turn is still running on another pod is
-- knowable from here, and a resume there can wait for it. A row whose lease ran out belongs to
-- a process that died (kill -9, a lost node): whoever finds it marks it 'interrupted', and that
-- row is then the turn's only record (nothing of it was committed).
--
-- A resume that waits for a running turn sets `claimed`: the owner then finishes the turn even
-- if its detach grace runs out (the client came back elsewhere), and the commit notifies the
-- channel trilemma_turn_<conversation id> (payload: the turn id), which the waiting process
-- LISTENs on. Unclaimed commits notify nobody: NOTIFY serializes committing transactions.

CREATE TABLE turn_state (
    turn_id text PRIMARY KEY CHECK (turn_id ~ '^[0-9a-f]{32}$'),
    conversation_id text NOT NULL CHECK (conversation_id ~ '^[0-9a-f]{32}$'),
    user_sub text NOT NULL DEFAULT '' CHECK (length(user_sub) <= 512),
    owner text NOT NULL CHECK (owner <> '' AND length(owner) <= 256),
    state text NOT NULL CHECK (state IN ('running', 'interrupted')),
    claimed boolean NOT NULL DEFAULT false,
    started_at timestamptz NOT NULL,
    lease_until timestamptz NOT NULL,
    ended_at timestamptz,
    CHECK ((state = 'running') = (ended_at IS NULL))
);
CREATE INDEX turn_state_conversation_idx ON turn_state (conversation_id, started_at DESC);

CREATE FUNCTION trilemma_turn_stored() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    was_claimed boolean;
BEGIN
    DELETE FROM turn_state WHERE turn_id = NEW.id RETURNING claimed INTO was_claimed;
    IF was_claimed THEN
        PERFORM pg_notify('trilemma_turn_' || NEW.conversation_id, NEW.id);
    END IF;
    RETURN NULL;
END
$$;

-- on the partitioned table: cloned onto every partition, present and future
CREATE TRIGGER turns_stored_ends_turn_state AFTER INSERT ON turns
    FOR EACH ROW EXECUTE FUNCTION trilemma_turn_stored();
