package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xtrace-dev/xtrace-operator/server/internal/app"
	batching "github.com/xtrace-dev/xtrace-operator/server/internal/ingest"
	"github.com/xtrace-dev/xtrace-operator/server/internal/store"
	"github.com/xtrace-dev/xtrace-operator/server/internal/traces"
)

// traceRounds splits the trace phase into rounds that alternate a raw COPY
// of a share of the requests' rows with the server's ingest of the same
// share. trace_ingest_ratio divides one by the other, and this machine's
// speed drifts by a quarter within a minute: measured one after the other,
// the same binary's ratio ranged from 0.21 to 0.33; alternated, both sides
// see the same drift.
const traceRounds = 4

// traceLoad is the trace phase's data, built before any clock starts: the
// request bodies the clients push and, for the raw COPY, the same requests
// parsed the way the server parses them.
type traceLoad struct {
	bodies [][]byte
	ups    [][]traces.Upsert // each body's, parsed
	copies [][]traces.Upsert // one COPY each
}

// copyRequests is the number of requests per COPY: a bulk load, which pays
// its statement and commit costs once per 750 rows. The server's groups hold
// at most one request per client (8 here), each commit waiting for its
// flush to disk before the clients hear back.
const copyRequests = 250

func newTraceLoad(n int) (*traceLoad, error) {
	now := time.Now().UTC()
	l := &traceLoad{bodies: make([][]byte, n), ups: make([][]traces.Upsert, n)}
	var cur []traces.Upsert
	for i := range l.bodies {
		l.bodies[i] = traceBody(i, now)
		ups, _, _, err := traces.ParseNativeBatch(l.bodies[i], now)
		if err != nil {
			return nil, err
		}
		l.ups[i] = ups
		cur = append(cur, ups...)
		if (i+1)%copyRequests == 0 {
			l.copies, cur = append(l.copies, cur), nil
		}
	}
	if len(cur) > 0 {
		l.copies = append(l.copies, cur)
	}
	return l, nil
}

// round returns the share of requests (bodies and their upserts) and
// COPYs of round r.
func (l *traceLoad) round(r int) (bodies [][]byte, ups [][]traces.Upsert, copies [][]traces.Upsert) {
	share := func(n int) (int, int) { return n * r / traceRounds, n * (r + 1) / traceRounds }
	lo, hi := share(len(l.copies))
	from, to := min(lo*copyRequests, len(l.bodies)), min(hi*copyRequests, len(l.bodies))
	return l.bodies[from:to], l.ups[from:to], l.copies[lo:hi]
}

// traces measures the trace write path: the server's ingest of gateway
// requests (one per gateway call, as Nebula Gateway sends them) against a
// raw COPY of the same rows into the copy database (same tables, same
// number of writers), the CPU every process spent, and the bytes on disk.
func (b *bench) traces(ctx context.Context) error {
	if b.o.traces <= 0 {
		return nil
	}
	load, err := newTraceLoad(b.o.traces)
	if err != nil {
		return err
	}
	copyStore, err := openStore(ctx, b.cluster.URL(copyDB), int32(b.o.clients))
	if err != nil {
		return err
	}
	defer copyStore.Close()
	writerStore, err := openStore(ctx, b.cluster.URL(writerDB), 2)
	if err != nil {
		return err
	}
	defer writerStore.Close()
	var copyTook, pushTook, writerTook time.Duration
	var pgCPU, srvCPU, clientCPU, copyPgCPU, copyStolen, pushStolen float64
	var lat [][]float64
	commits0, commitSeconds0 := commitStats(b.base, "traces")
	for r := 0; r < traceRounds; r++ {
		bodies, ups, copies := load.round(r)
		copyPg0, stolen0 := treeCPU(b.cluster.Pid()), stolenCPU()
		took, err := copyTraces(ctx, copyStore, copies, b.o.clients)
		if err != nil {
			return fmt.Errorf("raw COPY: %w", err)
		}
		copyTook += took
		copyPgCPU += treeCPU(b.cluster.Pid()) - copyPg0
		copyStolen += stolenCPU() - stolen0
		if took, err = writeAlone(ctx, writerStore, ups, b.o.clients); err != nil {
			return fmt.Errorf("trace writer alone: %w", err)
		}
		writerTook += took
		pg0, srv0, self0, stolen0 := treeCPU(b.cluster.Pid()), treeCPU(b.server.Process.Pid), selfCPU(), stolenCPU()
		p, err := postAll(b.base+"/v1/l/batch", bodies, b.o.clients, http.StatusOK,
			"Authorization", "Bearer "+benchToken, "Content-Type", "application/json")
		if err != nil {
			return err
		}
		pushTook += p.took
		pgCPU += treeCPU(b.cluster.Pid()) - pg0
		srvCPU += treeCPU(b.server.Process.Pid) - srv0
		clientCPU += selfCPU() - self0
		pushStolen += stolenCPU() - stolen0
		lat = append(lat, p.latency...)
	}
	// The copy database's leftovers are cleared here, untimed, so that what
	// alone reports after this phase is the server's alone.
	for _, db := range []string{copyDB, writerDB} {
		if err := b.cluster.Vacuum(ctx, db); err != nil {
			return err
		}
	}
	n := float64(b.o.traces)
	b.result["trace_copy_steal_share"] = stealShare(copyStolen, copyTook)
	b.result["trace_ingest_steal_share"] = stealShare(pushStolen, pushTook)
	fmt.Printf("raw COPY of the trace rows: %d requests in %s; postgres used %.1f CPU-s; the host took %.0f%% of the cores (steal)\n",
		b.o.traces, copyTook.Round(time.Millisecond), copyPgCPU, 100*b.result["trace_copy_steal_share"])
	fmt.Printf("the trace writer alone (requests parsed before the clock, %d lockstep submitters, the server's grouping): %d requests in %s\n",
		b.o.clients, b.o.traces, writerTook.Round(time.Millisecond))
	b.result["trace_writer_ratio"] = round(copyTook.Seconds()/writerTook.Seconds(), 3)
	fmt.Printf("trace ingest: %d requests in %s; postgres used %.1f CPU-s, xtrace %.1f CPU-s, the clients %.1f CPU-s; the host took %.0f%% of the cores (steal)\n",
		b.o.traces, pushTook.Round(time.Millisecond), pgCPU, srvCPU, clientCPU, 100*b.result["trace_ingest_steal_share"])
	commits, commitSeconds := commitStats(b.base, "traces")
	if commits -= commits0; commits > 0 {
		// A round of the lockstep clients is their requests' parsing, on
		// every core, then the group's commit, which waits for PostgreSQL's
		// one backend and the flush: the share says which dominates.
		commitSeconds -= commitSeconds0
		fmt.Printf("server: %.0f trace group commits, %.1f requests per commit, %.2f ms per commit; commits took %.0f%% of the push time\n",
			commits, n/commits, commitSeconds/commits*1000, 100*commitSeconds/pushTook.Seconds())
		b.result["trace_requests_per_commit"] = round(n/commits, 2)
		b.result["trace_commit_ms"] = round(commitSeconds/commits*1000, 3)
		b.result["trace_commit_share"] = round(commitSeconds/pushTook.Seconds(), 3)
	}
	m := scrapeMetrics(b.base)
	fmt.Printf("server: the flush is %.0f%% of a trace group's commit (moving average); two groups commit at once: %v\n",
		100*m["xtrace_trace_commit_flush_share"], m["xtrace_trace_commits_overlap"] == 1)
	b.result["trace_commit_flush_share"] = round(m["xtrace_trace_commit_flush_share"], 3)
	b.result["trace_commits_overlap"] = m["xtrace_trace_commits_overlap"]
	b.result["traces"] = n
	b.result["trace_copy_per_s"] = round(n/copyTook.Seconds(), 0)
	b.result["traces_per_s"] = round(n/pushTook.Seconds(), 0)
	b.result["trace_ingest_ratio"] = round(copyTook.Seconds()/pushTook.Seconds(), 3)
	b.result["trace_ingest_postgres_cpu_s"], b.result["trace_ingest_xtrace_cpu_s"] = round(pgCPU, 2), round(srvCPU, 2)
	b.result["trace_ingest_client_cpu_s"] = round(clientCPU, 2)
	b.result["trace_copy_postgres_cpu_s"] = round(copyPgCPU, 2)
	// The ratio is bounded twice: by the lockstep clients' latency (a
	// request waits for its group's commit) and by CPU. What the CPU each
	// request took would allow with every core busy says which bound holds:
	// when the ratio is near it, only cheaper requests raise it.
	cores, cpu := float64(runtime.NumCPU()), pgCPU+srvCPU+clientCPU
	cpuBound := cores / (cpu / n) / (n / copyTook.Seconds())
	idle := max(1-cpu/(cores*pushTook.Seconds()), 0)
	fmt.Printf("trace ingest used %.0f µs of CPU per request (all processes); with all %d cores busy the ratio could reach %.3f; %.0f%% of the cores' time went unused during the push (the host's steal is part of it)\n",
		cpu/n*1e6, int(cores), cpuBound, 100*idle)
	b.result["trace_cpu_bound_ratio"] = round(cpuBound, 3)
	b.result["trace_ingest_idle_share"] = round(idle, 3)
	_, pct := percentiles(lat)
	b.result["trace_batch_p50_ms"], b.result["trace_batch_p95_ms"], b.result["trace_batch_p99_ms"] = pct[0], pct[1], pct[2]
	st, err := openStore(ctx, b.cluster.URL(serverDB), 2)
	if err != nil {
		return err
	}
	defer st.Close()
	stats, err := st.TraceStorage(ctx)
	if err != nil {
		return err
	}
	if stats.Traces != int64(b.o.traces) {
		return fmt.Errorf("server stored %d traces, pushed %d", stats.Traces, b.o.traces)
	}
	b.result["bytes_per_trace"] = round(float64(stats.TotalBytes)/float64(stats.Traces), 1)
	b.result["observations_per_trace"] = round(float64(stats.Observations)/float64(stats.Traces), 2)
	return nil
}

// writeAlone is the server's trace writer without HTTP and parsing: each
// submitter hands the batcher one prepared request at a time and waits for
// its commit, as a lockstep client waits for its answer. With the raw COPY
// it bounds trace_ingest_ratio: what the ratio would be were HTTP and
// parsing free.
func writeAlone(ctx context.Context, st *store.Store, requests [][]traces.Upsert, submitters int) (time.Duration, error) {
	writes := make(chan *store.TraceWrite, len(requests))
	for _, ups := range requests {
		writes <- store.PrepareTraceWrite(ups)
	}
	close(writes)
	queue := batching.New(app.TraceQueueOptions(0, nil, st.TraceCommitsMayOverlap), func(ctx context.Context, ws []*store.TraceWrite) error {
		return st.WriteTraces(ctx, "default", ws)
	})
	defer queue.Close(ctx)
	var wg sync.WaitGroup
	var firstErr atomic.Value
	began := time.Now()
	for c := 0; c < submitters; c++ {
		wg.Add(1)
		go func(client context.Context) {
			defer wg.Done()
			for w := range writes {
				if err := queue.Submit(client, []*store.TraceWrite{w}, w.Upserts()); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
			}
		}(batching.WithClient(ctx, strconv.Itoa(c)))
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return 0, err
	}
	return time.Since(began), nil
}

// copyTraces COPYs the rows with the given number of writers.
func copyTraces(ctx context.Context, st *store.Store, copies [][]traces.Upsert, writers int) (time.Duration, error) {
	work := make(chan []traces.Upsert, len(copies))
	for _, c := range copies {
		work <- c
	}
	close(work)
	var wg sync.WaitGroup
	var firstErr atomic.Value
	began := time.Now()
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ups := range work {
				if err := st.CopyRawTraces(ctx, "default", ups); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return 0, err
	}
	return time.Since(began), nil
}

// traceBody is gateway request i as Nebula Gateway sends it: one trace, a
// routing span and a generation.
func traceBody(i int, ts time.Time) []byte {
	body, _ := json.Marshal(map[string]any{
		"trace": map[string]any{"id": fmt.Sprintf("bench-trace-%d", i), "name": "/v1/chat/completions", "userId": fmt.Sprintf("team-%d", i%20),
			"tags": []string{"gateway"}, "timestamp": ts.Format(time.RFC3339Nano)},
		"observations": []map[string]any{
			{"id": fmt.Sprintf("bench-route-%d", i), "name": "routing", "startTime": ts.Format(time.RFC3339Nano),
				"endTime": ts.Add(2 * time.Millisecond).Format(time.RFC3339Nano), "metadata": map[string]any{"endpoint": fmt.Sprintf("node-%d", i%100)}},
			{"id": fmt.Sprintf("bench-gen-%d", i), "type": "GENERATION", "name": "chat", "model": fmt.Sprintf("model-%d", i%50),
				"startTime": ts.Format(time.RFC3339Nano), "endTime": ts.Add(800 * time.Millisecond).Format(time.RFC3339Nano),
				"input": "How do I route this request?", "output": "To the least loaded replica.", "promptTokens": 120, "completionTokens": 48},
		},
	})
	return body
}
