-- Rollups are stored as written, not compressed. Chunk partitions set
-- toast_tuple_target low to keep samples out of line, which made PostgreSQL
-- compress every row's rollups (pglz) to save a sixth of their bytes, about
-- 0.1 bytes per point; decompressing them was a tenth of PostgreSQL's CPU in
-- a day's dashboard query, and each compaction write compressed them. They
-- cannot outgrow a row: at most 24 five-minute (or 2 hourly) records of 42
-- bytes. The setting reaches existing partitions and those created after
-- (LIKE ... INCLUDING STORAGE); rows written before keep their form until
-- rewritten, and read the same either way.
ALTER TABLE metric_chunks ALTER COLUMN rollup SET STORAGE PLAIN;
ALTER TABLE metric_chunks ALTER COLUMN rollup_hour SET STORAGE PLAIN;
