package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"time"

	"github.com/xtrace-dev/xtrace-operator/server/internal/traces"
)

// compact runs `xtrace compact` against the server's database, the way an
// operator catches up, and measures it: compacted points per second of wall
// time, and the CPU the xtrace process spent per million points.
func (b *bench) compact(ctx context.Context) error {
	st, err := openStore(ctx, b.cluster.URL(serverDB), 2)
	if err != nil {
		return err
	}
	defer st.Close()
	before, err := st.MetricStorage(ctx)
	if err != nil {
		return err
	}
	cmd := exec.Command(b.o.server, "compact")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+b.cluster.URL(serverDB), "XTRACE_LOG_LEVEL=warn")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	pgCPU0 := treeCPU(b.cluster.Pid())
	began := time.Now()
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("xtrace compact: %w", err)
	}
	took := time.Since(began)
	cpu := (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
	pgCPU := treeCPU(b.cluster.Pid()) - pgCPU0
	after, err := st.MetricStorage(ctx)
	if err != nil {
		return err
	}
	compacted := before.RawPoints - after.RawPoints
	fmt.Printf("compaction: %d points in %s; xtrace used %.1f CPU-s, postgres %.1f CPU-s; %d points stay raw (the hot window)\n",
		compacted, took.Round(time.Millisecond), cpu, pgCPU, after.RawPoints)
	if compacted > 0 {
		b.result["compaction_points_per_s"] = round(float64(compacted)/took.Seconds(), 0)
		b.result["compaction_cpu_s_per_million_points"] = round(cpu/float64(compacted)*1e6, 2)
	}
	b.result["compaction_postgres_cpu_s"], b.result["compaction_xtrace_cpu_s"] = round(pgCPU, 2), round(cpu, 2)
	b.result["fleet_ingest_points_per_s"] = round(float64(len(b.fleet))/b.o.interval.Seconds(), 0)
	return nil
}

// traceCopy times COPY of the same trace rows the trace ingest writes (one
// trace and two observations per request, merged in memory, 8 writers) into
// the copy database: the floor that trace_ingest_ratio divides by.
func (b *bench) traceCopy(ctx context.Context) error {
	if b.o.traces <= 0 {
		return nil
	}
	st, err := openStore(ctx, b.cluster.URL(copyDB), int32(b.o.clients))
	if err != nil {
		return err
	}
	defer st.Close()
	now := time.Now().UTC()
	// Parsed before the clock starts, as the server parses on its own time.
	const perCopy = 250 // requests per COPY, about what a group commit holds
	var chunks [][]traces.Upsert
	var cur []traces.Upsert
	for i := 0; i < b.o.traces; i++ {
		ups, _, _, err := traces.ParseNativeBatch(traceBody(i, now), now)
		if err != nil {
			return err
		}
		cur = append(cur, ups...)
		if (i+1)%perCopy == 0 {
			chunks, cur = append(chunks, cur), nil
		}
	}
	if len(cur) > 0 {
		chunks = append(chunks, cur)
	}
	work := make(chan []traces.Upsert, len(chunks))
	for _, c := range chunks {
		work <- c
	}
	close(work)
	var wg sync.WaitGroup
	var firstErr error
	var mu sync.Mutex
	began := time.Now()
	for c := 0; c < b.o.clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ups := range work {
				if err := st.CopyRawTraces(ctx, "default", ups); err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	took := time.Since(began)
	fmt.Printf("raw COPY of the trace rows: %d requests in %s\n", b.o.traces, took.Round(time.Millisecond))
	b.result["trace_copy_per_s"] = round(float64(b.o.traces)/took.Seconds(), 0)
	return nil
}
