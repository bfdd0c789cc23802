-- 003_prices_partitions.sql - the versioned price table (loaded from the price file at every
-- start) and monthly partitions made ahead of time.

CREATE TABLE prices (
    provider text NOT NULL CHECK (provider <> ''),
    model text NOT NULL CHECK (model <> ''),
    tier text NOT NULL CHECK (tier <> ''),
    effective_from date NOT NULL,
    currency text NOT NULL CHECK (currency IN ('INR', 'USD')),
    -- micro-units of currency per million tokens
    input_micros bigint NOT NULL CHECK (input_micros >= 0),
    cached_input_micros bigint NOT NULL CHECK (cached_input_micros >= 0),
    cache_write_micros bigint NOT NULL CHECK (cache_write_micros >= 0),
    output_micros bigint NOT NULL CHECK (output_micros >= 0),
    loaded_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (provider, model, tier, effective_from)
);

-- Create the monthly partitions (UTC months) of every growing table for `months` months from
-- the month of `from_ts`. Idempotent and safe when many pods call it at once (advisory lock).
-- A month whose rows already went to the DEFAULT partition is skipped with a notice (creating
-- it would fail); those rows stay queryable through the parent table.
CREATE FUNCTION trilemma_ensure_partitions(from_ts timestamptz, months integer)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    t text;
    i integer;
    lo timestamptz;
    hi timestamptz;
    pname text;
    made integer := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('trilemma_ensure_partitions'));
    FOREACH t IN ARRAY ARRAY['turns', 'messages', 'llm_calls', 'tool_calls', 'ledger'] LOOP
        FOR i IN 0 .. months - 1 LOOP
            lo := (date_trunc('month', from_ts AT TIME ZONE 'UTC')
                   + make_interval(months => i)) AT TIME ZONE 'UTC';
            hi := (date_trunc('month', from_ts AT TIME ZONE 'UTC')
                   + make_interval(months => i + 1)) AT TIME ZONE 'UTC';
            pname := t || '_' || to_char(lo AT TIME ZONE 'UTC', 'YYYYMM');
            CONTINUE WHEN to_regclass(pname) IS NOT NULL;
            BEGIN
                EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                               pname, t, lo, hi);
                made := made + 1;
            EXCEPTION WHEN check_violation THEN
                RAISE NOTICE 'partition % not created: its rows are in %_default', pname, t;
            END;
        END LOOP;
    END LOOP;
    RETURN made;
END
$$;

SELECT trilemma_ensure_partitions(now(), 2);
