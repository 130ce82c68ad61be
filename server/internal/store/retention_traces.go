package store

import (
	"context"
	"fmt"
	"time"
)

// TracesPruneResult says what a traces retention pass removed.
type TracesPruneResult struct {
	Traces, Observations, Scores int64
	// Complete is false when the time budget ran out first; the next pass continues.
	Complete bool
}

// TracesPruneBatch is how many traces one transaction deletes, so no statement
// holds locks for long and ingest keeps flowing.
const TracesPruneBatch = 5000

// PruneTraces deletes traces ingested before cutoff (created_at, not the
// trace's own timestamp, which a client may back-date) together with their
// observations and scores, batch by batch, until none are left or budget is
// spent. Observations and scores that belong to no trace go by their own
// ingestion time. Rows being written concurrently are skipped, not waited for.
func (s *Store) PruneTraces(ctx context.Context, cutoff time.Time, budget time.Duration) (TracesPruneResult, error) {
	var res TracesPruneResult
	deadline := time.Now().Add(budget)
	for time.Now().Before(deadline) {
		var t, o, sc int64
		err := s.pool.QueryRow(ctx, `
			WITH doomed AS (
				SELECT project_id, id FROM traces WHERE created_at < $1
				ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED
			), del_obs AS (
				DELETE FROM observations o USING doomed d
				WHERE o.project_id = d.project_id AND o.trace_id = d.id RETURNING 1
			), del_scores AS (
				DELETE FROM scores x USING doomed d
				WHERE x.project_id = d.project_id AND x.trace_id = d.id RETURNING 1
			), del_traces AS (
				DELETE FROM traces t USING doomed d
				WHERE t.project_id = d.project_id AND t.id = d.id RETURNING 1
			)
			SELECT (SELECT count(*) FROM del_traces), (SELECT count(*) FROM del_obs), (SELECT count(*) FROM del_scores)`,
			cutoff, TracesPruneBatch).Scan(&t, &o, &sc)
		if err != nil {
			return res, classify(fmt.Errorf("delete expired traces: %w", err))
		}
		res.Traces, res.Observations, res.Scores = res.Traces+t, res.Observations+o, res.Scores+sc
		if t < TracesPruneBatch {
			break
		}
	}
	if !time.Now().Before(deadline) {
		return res, nil
	}
	// Observations and scores without a trace (updates whose trace never came).
	for _, q := range []struct {
		sql string
		n   *int64
	}{
		{`DELETE FROM observations WHERE ctid = ANY(ARRAY(SELECT ctid FROM observations WHERE trace_id IS NULL AND created_at < $1 LIMIT $2))`, &res.Observations},
		{`DELETE FROM scores WHERE ctid = ANY(ARRAY(SELECT ctid FROM scores WHERE trace_id IS NULL AND created_at < $1 LIMIT $2))`, &res.Scores},
	} {
		for time.Now().Before(deadline) {
			tag, err := s.pool.Exec(ctx, q.sql, cutoff, TracesPruneBatch)
			if err != nil {
				return res, classify(fmt.Errorf("delete expired orphans: %w", err))
			}
			*q.n += tag.RowsAffected()
			if tag.RowsAffected() < TracesPruneBatch {
				break
			}
		}
	}
	res.Complete = time.Now().Before(deadline)
	return res, nil
}
