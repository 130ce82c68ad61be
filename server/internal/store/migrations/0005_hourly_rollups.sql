-- Hourly rollups beside the 5-minute ones in each chunk row: a query whose
-- step is whole hours (a day's fleet view) reads and folds twelve times fewer
-- buckets. Rows compacted before this migration have none (NULL) and are
-- read through their 5-minute rollups; the compactor fills the column for
-- every row it writes.
ALTER TABLE metric_chunks ADD COLUMN rollup_hour bytea;
ALTER TABLE metric_chunks ALTER COLUMN rollup_hour SET STORAGE MAIN;
