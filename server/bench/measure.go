package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/xtrace-dev/xtrace-operator/internal/devproc"
)

// warmups are the executions of each query not timed. The figures are
// steady state, as a router or a dashboard sees it: PostgreSQL plans a
// prepared statement on its first executions on a connection, and the first
// requests after a pause wait for idle connections to be checked and for
// idle cores to wake (the first request after 3 s idle took 4–35 ms).
const warmups = 30

// A slow query (a day's PromQL fleet view takes 1–2 s) stops warming up
// after warmupBudget, once it has minWarmups, and its timed runs after
// timedBudget, once it has minReps: 300 runs of each would add half an hour
// to a day's run with peers.
const (
	minWarmups   = 3
	warmupBudget = 3 * time.Second
	timedBudget  = 30 * time.Second
	minReps      = 50
)

// A fast query's timed runs go on for at least timedFloor, beyond reps: a
// shared machine's speed moves in waves of a tenth to a third of a second
// (the router query's median over 25 runs went from 0.9 to 1.4 ms and back
// within 200 runs), so 300 runs of a 1 ms query would sample one wave or
// none, and its p95 would say which.
const timedFloor = 3 * time.Second

// measure runs a query (path with its query string) reps times after the
// warm-ups, more when it is fast (see timedFloor), fewer when it is slow (see
// timedBudget), and returns p50/p95/p99 in ms and the number of timed runs.
func measure(base, token, path string, reps int) ([3]float64, int, error) {
	client := &http.Client{Timeout: 60 * time.Second}
	get := func() (time.Duration, []byte, error) {
		req, _ := http.NewRequest("GET", base+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		began := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return 0, nil, err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		took := time.Since(began)
		if resp.StatusCode != 200 {
			return 0, nil, fmt.Errorf("answered %d: %s", resp.StatusCode, body)
		}
		return took, body, nil
	}
	began := time.Now()
	for i := 0; i < warmups && (i < minWarmups || time.Since(began) < warmupBudget); i++ {
		_, body, err := get()
		if err != nil {
			return [3]float64{}, 0, err
		}
		if i == 0 {
			fmt.Printf("query %s → %s\n", path, describeAnswer(body))
		}
	}
	var ms []float64
	began = time.Now()
	for (len(ms) < reps || time.Since(began) < timedFloor) && (len(ms) < minReps || time.Since(began) < timedBudget) {
		took, _, err := get()
		if err != nil {
			return [3]float64{}, 0, err
		}
		ms = append(ms, float64(took.Microseconds())/1000)
	}
	n, pct := percentiles([][]float64{ms})
	return pct, n, nil
}

// recordLatency puts measure's figures of a query into a result under
// <name>_p50_ms, _p95_ms, _p99_ms and _runs.
func recordLatency(r map[string]float64, name string, ms [3]float64, runs int) {
	r[name+"_p50_ms"], r[name+"_p95_ms"], r[name+"_p99_ms"] = ms[0], ms[1], ms[2]
	r[name+"_runs"] = float64(runs)
}

// describeAnswer summarises a native (meta) or Prometheus (data.result) answer.
func describeAnswer(body []byte) string {
	var r struct {
		Data json.RawMessage
		Meta *struct {
			SeriesCount int  `json:"series_count"`
			Truncated   bool `json:"truncated"`
		}
	}
	_ = json.Unmarshal(body, &r)
	if r.Meta != nil {
		return fmt.Sprintf("%d series, truncated=%v", r.Meta.SeriesCount, r.Meta.Truncated)
	}
	var prom struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Values []json.RawMessage `json:"values"`
		} `json:"result"`
	}
	_ = json.Unmarshal(r.Data, &prom)
	points := 0
	for _, s := range prom.Result {
		points += max(len(s.Values), 1)
	}
	return fmt.Sprintf("%s of %d series, %d points", prom.ResultType, len(prom.Result), points)
}

func round(v float64, digits int) float64 {
	p := 1.0
	for i := 0; i < digits; i++ {
		p *= 10
	}
	return float64(int64(v*p+0.5)) / p
}

// commitStats reads the server's own metrics: number and total seconds of
// the group commits of a queue ("metrics", "traces").
func commitStats(base, queue string) (count, sum float64) {
	m := scrapeMetrics(base)
	return m[`xtrace_ingest_commit_duration_seconds_count{queue="`+queue+`"}`], m[`xtrace_ingest_commit_duration_seconds_sum{queue="`+queue+`"}`]
}

// treeCPU returns the user+system CPU seconds of pid and its children, live
// and exited (Linux /proc).
func treeCPU(pid int) float64 {
	total := 0.0
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := devproc.ReadProcStat(p)
		if err != nil || (p != pid && st.PPID != pid) {
			continue
		}
		total += st.CPU
		if p == pid {
			// The children that exited (PostgreSQL backends whose connections
			// closed), so that the total never goes down.
			total += st.ChildrenCPU
		}
	}
	return total
}

// settle waits until PostgreSQL is at rest before queries are timed: the
// bulk loads before (a day of points in minutes, compaction, a second copy by
// remote-write) leave a checkpoint's worth of dirty buffers and autovacuum
// work that a fleet writing 760 points/s would spread over hours.
func (b *bench) settle(ctx context.Context) error {
	took, err := b.cluster.Settle(ctx, 2*time.Minute)
	if err == nil {
		fmt.Printf("postgres settled (checkpoint written and on disk, autovacuum idle) in %s\n", took.Round(time.Millisecond))
	}
	return err
}

// stolenCPU is the CPU-seconds the host has taken from this machine's cores
// so far (steal in /proc/stat: time a core had work but the host ran another
// guest). On a shared host it comes in bursts, up to half the cores for a
// second or more, that a phase of a few seconds meets or misses: a ratio of
// two phases moves with it, so the bench reports each timed phase's share.
func stolenCPU() float64 {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(data), "\n")
	fields := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	if len(fields) < 9 || fields[0] != "cpu" {
		return 0
	}
	ticks, err := strconv.ParseFloat(fields[8], 64)
	if err != nil {
		return 0
	}
	return ticks / userHZ
}

// userHZ is the unit of /proc/stat's times (USER_HZ, 100 on Linux).
const userHZ = 100

// stealShare is the share of the cores' time over took that the host took
// (stolen: the difference of two stolenCPU readings).
func stealShare(stolen float64, took time.Duration) float64 {
	return round(stolen/(float64(runtime.NumCPU())*took.Seconds()), 3)
}

// selfCPU is the CPU-seconds this process (the bench's clients) has used.
func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}
