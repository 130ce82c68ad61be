package store

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/xtrace-dev/xtrace-operator/server/internal/chunks"
	"github.com/xtrace-dev/xtrace-operator/server/internal/metrics"
)

// latestFlushInterval is how long a committed point may wait before
// metric_latest shows it to other processes (this one's reads flush first):
// the newest value of every series is written at most this often, so its
// cost follows the number of series, not the rate of points (one row update
// costs about as much as one point's COPY). A second is far inside the
// router's 15 s staleness limit.
const latestFlushInterval = time.Second

// latestWriter coalesces the newest committed point of each series and
// writes them to metric_latest in the background. Reads through this store
// flush first, so they see every point this process committed.
type latestWriter struct {
	s       *Store
	mu      sync.Mutex
	pending map[int64]chunks.Sample
	flushMu sync.Mutex // one flush at a time
	stop    chan struct{}
	done    chan struct{}
}

func newLatestWriter(s *Store) *latestWriter {
	w := &latestWriter{s: s, pending: map[int64]chunks.Sample{}, stop: make(chan struct{}), done: make(chan struct{})}
	go w.loop()
	return w
}

// add records the newest point of each series of a committed group (at
// equal times the later point, the last write, wins).
func (w *latestWriter) add(points []metrics.Point, ids []int64) {
	w.mu.Lock()
	for i := range points {
		t := points[i].Time.UnixMicro()
		if p, ok := w.pending[ids[i]]; !ok || t >= p.T {
			w.pending[ids[i]] = chunks.Sample{T: t, V: points[i].Value}
		}
	}
	w.mu.Unlock()
}

func (w *latestWriter) loop() {
	defer close(w.done)
	t := time.NewTicker(latestFlushInterval)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_ = w.flush(ctx)
			cancel()
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_ = w.flush(ctx) // a failure keeps the values pending for the next tick
			cancel()
		}
	}
}

// flush writes the pending values; on failure they stay pending (unless a
// newer one for the same series arrived meanwhile).
func (w *latestWriter) flush(ctx context.Context) error {
	w.flushMu.Lock()
	defer w.flushMu.Unlock()
	w.mu.Lock()
	batch := w.pending
	w.pending = make(map[int64]chunks.Sample, len(batch))
	w.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	series := make([]int64, 0, len(batch))
	for id := range batch {
		series = append(series, id)
	}
	slices.Sort(series) // one row order for every writer: no deadlocks between replicas
	times := make([]time.Time, len(series))
	values := make([]float64, len(series))
	for k, id := range series {
		times[k], values[k] = time.UnixMicro(batch[id].T), batch[id].V
	}
	_, err := w.s.pool.Exec(ctx, `INSERT INTO metric_latest AS l (series_id, ts, value)
		SELECT * FROM unnest($1::bigint[], $2::timestamptz[], $3::float8[])
		ON CONFLICT (series_id) DO UPDATE SET ts = EXCLUDED.ts, value = EXCLUDED.value
		WHERE l.ts <= EXCLUDED.ts`, series, times, values)
	if err != nil {
		w.mu.Lock()
		for id, p := range batch {
			if q, ok := w.pending[id]; !ok || p.T > q.T {
				w.pending[id] = p
			}
		}
		w.mu.Unlock()
		return classify(err)
	}
	return nil
}

// close writes what is pending and stops the writer.
func (w *latestWriter) close() {
	close(w.stop)
	<-w.done
}

// RepairLatest advances metric_latest from the raw points of the last
// hours: after a crash, values that were committed but not yet written to it
// are not lost for long (every series' next push repairs it too).
func (s *Store) RepairLatest(ctx context.Context, since time.Time) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO metric_latest AS l (series_id, ts, value)
		SELECT DISTINCT ON (series_id) series_id, ts, value FROM metric_points WHERE ts >= $1 ORDER BY series_id, ts DESC
		ON CONFLICT (series_id) DO UPDATE SET ts = EXCLUDED.ts, value = EXCLUDED.value WHERE l.ts < EXCLUDED.ts`, since)
	return classify(err)
}

// flushLatest writes this process's pending latest values before a read that
// uses them. While read replicas answer and the primary is unreachable, the
// read goes on without them (they stay pending until the primary is back).
func (s *Store) flushLatest(ctx context.Context) error {
	if s.replicas != nil && s.replicas.primaryDown.Load() {
		return nil
	}
	err := s.latest.flush(ctx)
	if err != nil && s.replicas != nil && IsUnavailable(err) {
		return nil
	}
	return err
}
