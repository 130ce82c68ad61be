package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"time"
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
