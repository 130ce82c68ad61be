-- Traces expire by ingestion time (created_at), not by the time they claim:
-- a back-dated or replayed trace is kept for the full retention period after
-- it arrived. Observations and scores without a trace go the same way.
DROP INDEX traces_retention;
CREATE INDEX traces_retention ON traces (created_at);
DROP INDEX observations_retention;
CREATE INDEX observations_retention ON observations (created_at) WHERE trace_id IS NULL;
DROP INDEX scores_retention;
CREATE INDEX scores_retention ON scores (created_at) WHERE trace_id IS NULL;
