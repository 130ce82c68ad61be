package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/xtrace-dev/xtrace-operator/server/internal/metrics"
	"github.com/xtrace-dev/xtrace-operator/server/internal/store"
)

// ingestRounds splits the metric ingest into rounds, each a raw COPY of a
// share of the steps and then the server's ingest of the same steps, so
// that a slow spell of the shared host slows both sides of ingest_ratio
// (run one after the other, the two had drifted apart by up to 30%).
const ingestRounds = 4

// ingest times the server's ingest of every point over HTTP against a raw
// COPY of the same points into the points table of a second database with
// the same schema (series and partitions created first, untimed).
func (b *bench) ingest(ctx context.Context) error {
	copier, err := newRawCopier(ctx, b)
	if err != nil {
		return err
	}
	defer copier.st.Close()
	bodies := newMetricBodies(b.fleet, b.o, b.start)
	pgPid, srvPid := b.cluster.Pid(), b.server.Process.Pid
	var copyTook, pushTook time.Duration
	var copyPg, copyStolen, pushPg, pushSrv, pushStolen float64
	var retries int64
	for r := 0; r < ingestRounds; r++ {
		from, to := b.o.steps*r/ingestRounds, b.o.steps*(r+1)/ingestRounds
		pg0, stolen0 := treeCPU(pgPid), stolenCPU()
		took, err := copier.copySteps(ctx, from, to)
		if err != nil {
			return fmt.Errorf("raw COPY: %w", err)
		}
		copyTook += took
		copyPg += treeCPU(pgPid) - pg0
		copyStolen += stolenCPU() - stolen0
		// Bodies are encoded before the clock starts: the load generator's
		// JSON encoding would otherwise compete with the server for the cores.
		encoded := bodies.steps(from, to)
		pg0, srv0, stolen0 := treeCPU(pgPid), treeCPU(srvPid), stolenCPU()
		p, err := postAll(b.base+"/v1/metrics/batch", encoded, b.o.clients, http.StatusOK,
			"Authorization", "Bearer "+benchToken, "Content-Type", "application/json")
		if err != nil {
			return err
		}
		pushTook += p.took
		pushPg += treeCPU(pgPid) - pg0
		pushSrv += treeCPU(srvPid) - srv0
		pushStolen += stolenCPU() - stolen0
		retries += p.retries
	}
	// The copy database's leftovers are cleared here, untimed, so that what
	// alone reports after this phase is the server's alone.
	if err := b.cluster.Vacuum(ctx, copyDB); err != nil {
		return err
	}
	n := float64(b.points())
	b.result["copy_steal_share"] = stealShare(copyStolen, copyTook)
	b.result["ingest_steal_share"] = stealShare(pushStolen, pushTook)
	fmt.Printf("raw COPY: %d points in %s; postgres used %.1f CPU-s; the host took %.0f%% of the cores (steal)\n",
		b.points(), copyTook.Round(time.Millisecond), copyPg, 100*b.result["copy_steal_share"])
	fmt.Printf("ingest over HTTP: %d points in %s (%d clients, %d points per request, %d retries after 429)\n",
		b.points(), pushTook.Round(time.Millisecond), b.o.clients, b.o.batch, retries)
	fmt.Printf("ingest: postgres used %.1f CPU-s, xtrace %.1f CPU-s; the host took %.0f%% of the cores (steal); "+
		"%d rounds, each a raw COPY then the ingest of the same steps\n",
		pushPg, pushSrv, 100*b.result["ingest_steal_share"], ingestRounds)
	b.result["ingest_postgres_cpu_s"], b.result["ingest_xtrace_cpu_s"] = round(pushPg, 2), round(pushSrv, 2)
	if commits, seconds := commitStats(b.base, "metrics"); commits > 0 {
		fmt.Printf("server: %d group commits, %.0f points per commit, %.1f ms per commit on average\n",
			int(commits), n/commits, seconds/commits*1000)
	}
	b.result["copy_points_per_s"] = round(n/copyTook.Seconds(), 0)
	b.result["ingest_points_per_s"] = round(n/pushTook.Seconds(), 0)
	b.result["ingest_ratio"] = round(copyTook.Seconds()/pushTook.Seconds(), 3)
	return nil
}

// rawCopier COPYs the fleet's points, a range of steps at a time, into the
// copy database, in the order and chunks the server sees them: by time step,
// in chunks of one COPY each.
type rawCopier struct {
	b     *bench
	st    *store.Store
	ids   []int64
	model *valueModel
	rows  []store.RawPoint // one COPY's rows, allocated once, before any clock
}

// copyChunk is the number of points per COPY.
const copyChunk = 100000

// newRawCopier creates the copy database's series and partitions.
func newRawCopier(ctx context.Context, b *bench) (*rawCopier, error) {
	st, err := openStore(ctx, b.cluster.URL(copyDB), 4)
	if err != nil {
		return nil, err
	}
	// One raw window at a time, as the server's pushes create them (one
	// call for all would be a back-fill: a partition per chunk window).
	for w := b.start; !w.After(b.end.Add(time.Hour)); w = w.Add(store.RawWindow) {
		if err := st.EnsurePartitions(ctx, w); err != nil {
			st.Close()
			return nil, err
		}
	}
	probe := make([]metrics.Point, len(b.fleet))
	for i, s := range b.fleet {
		probe[i] = metrics.Point{Name: s.name, LabelsJSON: metrics.CanonicalLabels(s.labels)}
	}
	ids, err := st.SeriesIDs(ctx, "default", probe)
	if err != nil {
		st.Close()
		return nil, err
	}
	return &rawCopier{b: b, st: st, ids: ids, model: newValueModel(b.fleet), rows: make([]store.RawPoint, 0, copyChunk)}, nil
}

// copySteps COPYs steps [from, to) and says how long it took.
func (c *rawCopier) copySteps(ctx context.Context, from, to int) (time.Duration, error) {
	rows := c.rows[:0]
	began := time.Now()
	for step := from; step < to; step++ {
		ts := c.b.start.Add(time.Duration(step) * c.b.o.interval)
		for si := range c.b.fleet {
			rows = append(rows, store.RawPoint{SeriesID: c.ids[si], Time: ts, Value: c.model.value(si)})
			if len(rows) == copyChunk {
				if err := c.st.CopyRawPoints(ctx, rows); err != nil {
					return 0, err
				}
				rows = rows[:0]
			}
		}
	}
	if len(rows) > 0 {
		if err := c.st.CopyRawPoints(ctx, rows); err != nil {
			return 0, err
		}
	}
	return time.Since(began), nil
}

// metricBodies encodes the fleet's points as /v1/metrics/batch bodies of
// o.batch points, in time-step order, a range of steps at a time.
type metricBodies struct {
	fl       []series
	labels   [][]byte // each series' labels as JSON
	model    *valueModel
	start    time.Time
	interval time.Duration
	batch    int
}

func newMetricBodies(fl []series, o options, start time.Time) *metricBodies {
	labels := make([][]byte, len(fl))
	for i, s := range fl {
		labels[i], _ = json.Marshal(s.labels)
	}
	return &metricBodies{fl: fl, labels: labels, model: newValueModel(fl), start: start, interval: o.interval, batch: o.batch}
}

// steps encodes the points of steps [from, to).
func (m *metricBodies) steps(from, to int) [][]byte {
	var encoded [][]byte
	body := make([]byte, 0, m.batch*110)
	n := 0
	emit := func() {
		body = append(body, "]}"...)
		encoded = append(encoded, body)
		body, n = make([]byte, 0, m.batch*110), 0
	}
	for step := from; step < to; step++ {
		ts := m.start.Add(time.Duration(step) * m.interval).Format(time.RFC3339)
		for si, s := range m.fl {
			if n == 0 {
				body = append(body, `{"metrics":[`...)
			} else {
				body = append(body, ',')
			}
			body = append(body, `{"name":"`...)
			body = append(body, s.name...)
			body = append(body, `","labels":`...)
			body = append(body, m.labels[si]...)
			body = append(body, `,"value":`...)
			body = strconv.AppendFloat(body, m.model.value(si), 'g', -1, 64)
			body = append(body, `,"timestamp":"`...)
			body = append(body, ts...)
			body = append(body, `"}`...)
			if n++; n == m.batch {
				emit()
			}
		}
	}
	if n > 0 {
		emit()
	}
	return encoded
}
