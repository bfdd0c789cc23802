-- 005_traces.sql - the spans of every traced turn (docs/tracing.md): one row per span, written in
-- the same transaction as its turn, partitioned by day on the turn's start time so that
-- retention ([trace] retention_days) drops whole days.

CREATE TABLE spans (
    turn_id text NOT NULL,
    started_at timestamptz NOT NULL, -- the turn's start: the partition key
    span_id text NOT NULL CHECK (span_id ~ '^[0-9a-f]{16}$'),
    conversation_id text NOT NULL CHECK (conversation_id ~ '^[0-9a-f]{32}$'),
    trace_id text NOT NULL CHECK (trace_id ~ '^[0-9a-f]{32}$'),
    parent_span_id text CHECK (parent_span_id ~ '^[0-9a-f]{16}$'), -- NULL: the turn's root span
    kind text NOT NULL CHECK (kind IN ('turn', 'classify', 'agent', 'model', 'tool', 'cache',
                                       'guard', 'handoff')),
    name text NOT NULL CHECK (length(name) <= 128),
    start_us bigint NOT NULL CHECK (start_us >= 0),
    end_us bigint NOT NULL CHECK (end_us >= start_us),
    status text NOT NULL CHECK (status IN ('ok', 'error')),
    status_message text,
    attributes jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(attributes) = 'object'),
    events jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(events) = 'array'),
    PRIMARY KEY (turn_id, span_id, started_at)
) PARTITION BY RANGE (started_at);

CREATE TABLE spans_default PARTITION OF spans DEFAULT;
CREATE INDEX spans_conversation_idx ON spans (conversation_id, started_at);
CREATE INDEX spans_trace_idx ON spans (trace_id);

-- Day partitions of spans (UTC days) from the day of from_ts to two days ahead, and the ones
-- that ended more than retention_days days before it dropped (0 = keep everything). Safe when
-- many pods call it at once (advisory lock); a day whose rows went to the DEFAULT partition is
-- skipped with a notice, as in trilemma_ensure_partitions.
CREATE FUNCTION trilemma_trace_partitions(from_ts timestamptz, retention_days integer)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    i integer;
    lo timestamptz;
    hi timestamptz;
    pname text;
    made integer := 0;
    day0 timestamptz := date_trunc('day', from_ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    p record;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('trilemma_trace_partitions'));
    FOR i IN 0 .. 2 LOOP
        lo := day0 + make_interval(days => i);
        hi := day0 + make_interval(days => i + 1);
        pname := 'spans_' || to_char(lo AT TIME ZONE 'UTC', 'YYYYMMDD');
        CONTINUE WHEN to_regclass(pname) IS NOT NULL;
        BEGIN
            EXECUTE format('CREATE TABLE %I PARTITION OF spans FOR VALUES FROM (%L) TO (%L)',
                           pname, lo, hi);
            made := made + 1;
        EXCEPTION WHEN check_violation THEN
            RAISE NOTICE 'partition % not created: its rows are in spans_default', pname;
        END;
    END LOOP;
    IF retention_days > 0 THEN
        FOR p IN SELECT c.relname FROM pg_inherits h JOIN pg_class c ON c.oid = h.inhrelid
                 WHERE h.inhparent = 'spans'::regclass AND c.relname ~ '^spans_[0-9]{8}$'
                   AND to_date(substr(c.relname, 7), 'YYYYMMDD')
                       < (day0 - make_interval(days => retention_days))::date LOOP
            EXECUTE format('DROP TABLE %I', p.relname);
        END LOOP;
    END IF;
    RETURN made;
END
$$;

SELECT trilemma_trace_partitions(now(), 0);
