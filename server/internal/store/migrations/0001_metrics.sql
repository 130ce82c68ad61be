-- Time-series metrics: one row per series, one narrow row per point.
-- Points are range-partitioned by UTC day; the server creates partitions
-- ahead of time and on demand, and retention drops whole days.

CREATE TABLE metric_series (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project_id  text        NOT NULL,
    environment text        NOT NULL DEFAULT 'default',
    name        text        NOT NULL,
    labels      jsonb       NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- UTC day of the last push, refreshed at most once a day per replica;
    -- retention removes series not seen for the retention period.
    last_seen   date        NOT NULL DEFAULT (now() AT TIME ZONE 'UTC')::date
);
-- Label sets can exceed a btree entry's size limit, so uniqueness is on their digest;
-- lookups still compare the labels themselves.
CREATE UNIQUE INDEX metric_series_identity
    ON metric_series (project_id, name, environment, md5(labels::text));
CREATE INDEX metric_series_labels ON metric_series USING gin (labels jsonb_path_ops);

CREATE TABLE metric_points (
    series_id bigint           NOT NULL,
    ts        timestamptz      NOT NULL,
    value     double precision NOT NULL,
    PRIMARY KEY (series_id, ts)
) PARTITION BY RANGE (ts);

-- The original single-table shape, for people who query SQL by hand.
CREATE VIEW metrics AS
SELECT s.project_id, s.environment, s.name, s.labels, p.value, p.ts AS "timestamp"
FROM metric_points p
JOIN metric_series s ON s.id = p.series_id;
