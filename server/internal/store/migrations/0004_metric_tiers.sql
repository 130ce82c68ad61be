-- Metrics in tiers. Recent points stay raw in metric_points (now partitioned
-- by 5-minute raw window: once a raw window is compacted its partition is
-- empty and dropped, which gives its space back). Each 2-hour chunk window
-- of a series is one row of metric_chunks, re-encoded as raw windows are
-- added to it: its samples in Prometheus' XOR encoding, and 5-minute rollups
-- (count, sum, min, max, last) for long ranges. metric_latest holds the
-- newest point of every series.

CREATE TABLE metric_chunks (
    series_id bigint      NOT NULL,
    start_ts  timestamptz NOT NULL, -- the window's start (a multiple of 2 hours)
    min_ts    timestamptz NOT NULL,
    max_ts    timestamptz NOT NULL,
    count     integer     NOT NULL,
    rollup    bytea       NOT NULL, -- 5-minute buckets (see server/internal/chunks)
    data      bytea       NOT NULL, -- XOR chunks, each prefixed by its length (uvarint)
    PRIMARY KEY (series_id, start_ts)
) PARTITION BY RANGE (start_ts);
-- The samples live out of line (partitions set toast_tuple_target low), so
-- reading rollups does not read samples; they are already compressed.
ALTER TABLE metric_chunks ALTER COLUMN data SET STORAGE EXTERNAL;
ALTER TABLE metric_chunks ALTER COLUMN rollup SET STORAGE MAIN;

CREATE TABLE metric_latest (
    series_id bigint           PRIMARY KEY,
    ts        timestamptz      NOT NULL,
    value     double precision NOT NULL
) WITH (fillfactor = 70); -- room for HOT updates: every push moves a series' row

-- metric_chunk_points decodes the XOR chunks of a metric_chunks row, for
-- people who query SQL by hand (the server decodes in Go). Timestamps in the
-- chunks are microseconds since the epoch. Correct, not fast.
CREATE FUNCTION metric_chunk_points(data bytea)
RETURNS TABLE ("timestamp" timestamptz, value double precision)
LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
    bits bit varying;
    chunk_start integer := 0; -- byte offset of the current length prefix
    len bigint; shift integer; b integer;
    pos integer;             -- bit position (1-based) inside bits
    n integer; i integer;
    t bigint; tdelta bigint; dod bigint; sz integer;
    v bit(64); delta bit(64);
    lead integer; trail integer; sig integer;
    ctl integer;
BEGIN
    WHILE chunk_start < length(data) LOOP
        -- uvarint length prefix
        len := 0; shift := 0;
        LOOP
            b := get_byte(data, chunk_start); chunk_start := chunk_start + 1;
            len := len | ((b & 127)::bigint << shift);
            EXIT WHEN b < 128;
            shift := shift + 7;
        END LOOP;
        bits := ('x' || encode(substring(data FROM chunk_start + 1 FOR len::integer), 'hex'))::bit varying;
        chunk_start := chunk_start + len::integer;
        n := substring(bits FROM 1 FOR 16)::integer;
        pos := 17;
        FOR i IN 1..n LOOP
            IF i = 1 THEN
                -- zigzag varint, byte aligned
                t := 0; shift := 0;
                LOOP
                    b := substring(bits FROM pos FOR 8)::integer; pos := pos + 8;
                    t := t | ((b & 127)::bigint << shift);
                    EXIT WHEN b < 128;
                    shift := shift + 7;
                END LOOP;
                t := (t >> 1) # (-(t & 1));
                v := substring(bits FROM pos FOR 64); pos := pos + 64;
                lead := 255; trail := 0;
            ELSE
                IF i = 2 THEN
                    tdelta := 0; shift := 0;
                    LOOP
                        b := substring(bits FROM pos FOR 8)::integer; pos := pos + 8;
                        tdelta := tdelta | ((b & 127)::bigint << shift);
                        EXIT WHEN b < 128;
                        shift := shift + 7;
                    END LOOP;
                ELSE
                    IF substring(bits FROM pos FOR 1) = B'0' THEN
                        pos := pos + 1; sz := 0; dod := 0;
                    ELSIF substring(bits FROM pos FOR 2) = B'10' THEN
                        pos := pos + 2; sz := 14;
                    ELSIF substring(bits FROM pos FOR 3) = B'110' THEN
                        pos := pos + 3; sz := 17;
                    ELSIF substring(bits FROM pos FOR 4) = B'1110' THEN
                        pos := pos + 4; sz := 20;
                    ELSE
                        pos := pos + 4; sz := 64;
                    END IF;
                    IF sz = 64 THEN
                        dod := substring(bits FROM pos FOR 64)::bigint; pos := pos + 64;
                    ELSIF sz > 0 THEN
                        dod := substring(bits FROM pos FOR sz)::bigint; pos := pos + sz;
                        IF dod > (1::bigint << (sz - 1)) THEN
                            dod := dod - (1::bigint << sz);
                        END IF;
                    END IF;
                    tdelta := tdelta + dod;
                END IF;
                t := t + tdelta;
                -- the value: XOR with the previous one
                IF substring(bits FROM pos FOR 1) = B'1' THEN
                    pos := pos + 1;
                    ctl := substring(bits FROM pos FOR 1)::integer; pos := pos + 1;
                    IF ctl = 1 THEN
                        lead := substring(bits FROM pos FOR 5)::integer; pos := pos + 5;
                        sig := substring(bits FROM pos FOR 6)::integer; pos := pos + 6;
                        IF sig = 0 THEN sig := 64; END IF;
                        trail := 64 - lead - sig;
                    ELSE
                        sig := 64 - lead - trail;
                    END IF;
                    delta := (repeat('0', lead) || substring(bits FROM pos FOR sig)::text || repeat('0', trail))::bit(64);
                    pos := pos + sig;
                    v := v # delta;
                ELSE
                    pos := pos + 1;
                END IF;
            END IF;
            "timestamp" := to_timestamp(0) + t * interval '1 microsecond';
            value := metric_float8_from_bits(v);
            RETURN NEXT;
        END LOOP;
    END LOOP;
END $$;

-- metric_float8_from_bits turns IEEE 754 bits into the double they encode.
CREATE FUNCTION metric_float8_from_bits(v bit(64)) RETURNS double precision
LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
    sign double precision := CASE WHEN substring(v FROM 1 FOR 1) = B'1' THEN -1 ELSE 1 END;
    e integer := substring(v FROM 2 FOR 11)::integer;
    m bigint := substring(v FROM 13 FOR 52)::bigint;
BEGIN
    IF e = 2047 THEN
        RETURN CASE WHEN m = 0 THEN sign * 'Infinity'::double precision ELSE 'NaN'::double precision END;
    ELSIF e = 0 THEN
        RETURN sign * m::double precision * power(2::double precision, -1074);
    END IF;
    RETURN sign * (1 + m::double precision / 4503599627370496) * power(2::double precision, e - 1023);
END $$;

-- The original single-table shape, now over every tier: raw rows, and the
-- compacted samples that no newer raw row replaces.
CREATE OR REPLACE VIEW metrics AS
SELECT s.project_id, s.environment, s.name, s.labels, p.value, p.ts AS "timestamp"
FROM metric_points p
JOIN metric_series s ON s.id = p.series_id
UNION ALL
SELECT s.project_id, s.environment, s.name, s.labels, d.value, d."timestamp"
FROM metric_chunks c
JOIN metric_series s ON s.id = c.series_id
CROSS JOIN LATERAL metric_chunk_points(c.data) d
WHERE NOT EXISTS (SELECT 1 FROM metric_points r WHERE r.series_id = c.series_id AND r.ts = d."timestamp");
