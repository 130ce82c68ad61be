package replicatest

import (
	"bytes"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xtrace-dev/xtrace-operator/internal/pgtest"
	"github.com/xtrace-dev/xtrace-operator/server/internal/servertest"
)

// fleet is a set of real xtrace processes on one database behind a
// round-robin client, as several pods behind a Service.
type fleet struct {
	t     *testing.T
	db    string
	mu    sync.Mutex
	procs []*member // current members; a killed one is replaced in place
	all   []*member // every process ever started, for their logs
	next  atomic.Uint64
}

type member struct {
	name   string
	proc   *servertest.Process
	logs   *logSink
	killed time.Time // when the kill signal was sent; zero while it runs (or ran until the test's end)
}

func (f *fleet) start(name string) *member {
	f.t.Helper()
	m := &member{name: name, logs: &logSink{}}
	m.proc = servertest.StartProcess(f.t, servertest.Options{DatabaseURL: f.db, Log: m.logs, Env: map[string]string{
		// Debug shows the exclusive sections; every process runs retention and
		// compaction four times a second.
		"XTRACE_LOG_LEVEL": "debug", "XTRACE_RETENTION_INTERVAL": "250ms", "XTRACE_COMPACTION_INTERVAL": "250ms",
	}})
	f.all = append(f.all, m)
	return m
}

// do sends a request to the next process, trying each of the others once
// when one does not answer or answers 503 (a killed or restarting pod); the
// last answer (or error) is returned.
func (f *fleet) do(method, path string, body any) (*servertest.Response, error) {
	var resp *servertest.Response
	var err error
	first := f.next.Add(1)
	for attempt := uint64(0); attempt < 3; attempt++ {
		f.mu.Lock()
		m := f.procs[(first+attempt)%uint64(len(f.procs))]
		f.mu.Unlock()
		resp, err = m.proc.Try(method, path, body)
		if err == nil && resp.Status != 503 {
			return resp, nil
		}
	}
	return resp, err
}

// TestThreeProcessesOnOneDatabase runs 3 xtrace processes on one database
// behind round-robin clients, with writes and queries spread across them,
// and kills one (SIGKILL) and restarts it mid-run. Nothing acknowledged is
// lost; no two processes ever hold the same exclusive section (migrations,
// partition DDL, retention, and any job run through store.RunExclusive) at
// once; series created concurrently through different processes exist once;
// every process answers every query, identically.
func TestThreeProcessesOnOneDatabase(t *testing.T) {
	t.Parallel()
	f := &fleet{t: t, db: servertest.MigratedDatabase(t)}
	f.procs = []*member{f.start("a"), f.start("b"), f.start("c")}
	t.Cleanup(func() {
		if t.Failed() {
			logProblems(t, f.all)
		}
	})

	const nodes = 20
	base := time.Now().UTC().Truncate(time.Hour).Add(-time.Hour)
	var (
		mu          sync.Mutex
		ackedPoints = map[string]float64{} // "node|unix" -> value
		ackedTraces = map[string]bool{}
		failed      []string
		reads       atomic.Int64
		stop        atomic.Bool
		wg          sync.WaitGroup
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		failed = append(failed, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	// Writers: every batch holds one point of each of the same 20 series (so
	// all writers create the series concurrently at first), on one of 30 past
	// days (so partitions are created on demand by whichever process gets there first).
	for c := 0; c < 3; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for b := 0; !stop.Load(); b++ {
				k := b*3 + c // unique per batch; its day and second make its timestamp unique
				ts := base.AddDate(0, 0, -(k % 30)).Add(-time.Duration(k) * time.Second)
				var pts []map[string]any
				for n := 0; n < nodes; n++ {
					pts = append(pts, map[string]any{"name": "mp_gpu_utilization", "labels": map[string]string{"node_id": fmt.Sprintf("node-%d", n)},
						"value": float64(c*1000000 + b*100 + n), "timestamp": ts.Format(time.RFC3339)})
				}
				resp, err := f.do("POST", "/v1/metrics/batch", map[string]any{"metrics": pts})
				if err != nil || resp.Status != 200 {
					continue // not acknowledged: the client would retry; nothing is owed
				}
				mu.Lock()
				for n := 0; n < nodes; n++ {
					ackedPoints[fmt.Sprintf("node-%d|%d", n, ts.Unix())] = float64(c*1000000 + b*100 + n)
				}
				mu.Unlock()
			}
		}(c)
	}
	wg.Add(1)
	go func() { // trace writer
		defer wg.Done()
		for i := 0; !stop.Load(); i++ {
			id := fmt.Sprintf("mp-trace-%d", i)
			resp, err := f.do("POST", "/v1/l/batch", map[string]any{"trace": map[string]any{"id": id, "name": "chat", "userId": fmt.Sprintf("u%d", i%3)},
				"observations": []map[string]any{{"id": id + "-gen", "type": "GENERATION", "model": "m"}}})
			if err == nil && resp.Status == 200 {
				mu.Lock()
				ackedTraces[id] = true
				mu.Unlock()
			}
		}
	}()
	queries := []string{
		"/api/public/metrics/query?" + url.Values{"name": {"mp_gpu_utilization"}, "from": {base.AddDate(0, 0, -30).Format(time.RFC3339)},
			"to": {base.Add(time.Hour).Format(time.RFC3339)}, "step": {"1d"}, "agg": {"count"}, "group_by": {"node_id"}}.Encode(),
		"/api/public/metrics/names",
		"/api/public/metrics/labels?name=mp_gpu_utilization",
		"/api/public/traces?limit=100",
		"/api/public/metrics/daily",
	}
	for c := 0; c < 2; c++ {
		wg.Add(1)
		go func(c int) { // readers
			defer wg.Done()
			for i := c; !stop.Load(); i++ {
				q := queries[i%len(queries)]
				resp, err := f.do("GET", q, nil)
				switch {
				case err != nil:
					fail("GET %s: %v", q, err)
				case resp.Status != 200:
					fail("GET %s: %d %s", q, resp.Status, resp.Body)
				default:
					reads.Add(1)
				}
			}
		}(c)
	}

	acked := func() int { mu.Lock(); defer mu.Unlock(); return len(ackedPoints) }
	servertest.WaitFor(t, 60*time.Second, "writes through all three", func() bool { return acked() >= 3*nodes*30 })

	// One pod dies without warning and comes back.
	victim := f.procs[1]
	// Its open sections end when the signal is sent: PostgreSQL releases its
	// locks as soon as the connections drop, which can be before Kill returns.
	victim.killed = time.Now()
	victim.proc.Kill()
	before := acked()
	servertest.WaitFor(t, 60*time.Second, "writes to go on through the others", func() bool { return acked() >= before+10*nodes })
	restarted := f.start("b2")
	f.mu.Lock()
	f.procs[1] = restarted
	f.mu.Unlock()
	before = acked()
	servertest.WaitFor(t, 60*time.Second, "writes through the restarted process", func() bool {
		return acked() >= before+20*nodes && len(restarted.logs.all(isRequest("POST /v1/metrics/batch", 200))) >= 3 &&
			len(restarted.logs.all(isRequest("GET /api/public/metrics/query", 200))) >= 1
	})
	stop.Store(true)
	wg.Wait()

	if len(failed) > 0 {
		t.Errorf("%d of %d reads failed; first: %s", len(failed), int(reads.Load())+len(failed), failed[0])
	}

	// Nothing acknowledged is lost.
	db := pgtest.Connect(t, f.db)
	stored := map[string]float64{}
	for _, row := range db.Rows(`SELECT labels->>'node_id', extract(epoch FROM "timestamp")::bigint, value FROM metrics WHERE name = 'mp_gpu_utilization'`) {
		stored[fmt.Sprintf("%s|%d", row[0], row[1])] = row[2].(float64)
	}
	lost := 0
	var lostKeys []string
	for k, v := range ackedPoints {
		if got, ok := stored[k]; !ok || got != v {
			lost++
			lostKeys = append(lostKeys, k)
			if lost <= 3 {
				t.Errorf("acknowledged point %s = %v is stored as %v (present %v)", k, v, got, ok)
			}
		}
	}
	if len(lostKeys) > 0 {
		explainLostPoints(t, db, lostKeys)
	}
	storedTraces := map[string]bool{}
	for _, row := range db.Rows(`SELECT t.id FROM traces t JOIN observations o ON o.trace_id = t.id`) {
		storedTraces[row[0].(string)] = true
	}
	for id := range ackedTraces {
		if !storedTraces[id] {
			lost++
			t.Errorf("acknowledged trace %s (with its observation) is not stored", id)
		}
	}

	// Series created at once through different processes exist once each.
	var series, distinct int64
	db.Scan(`SELECT count(*), count(DISTINCT (project_id, environment, name, labels)) FROM metric_series WHERE name = 'mp_gpu_utilization'`, nil, &series, &distinct)
	if series != nodes || distinct != nodes {
		t.Errorf("%d series rows (%d distinct) for %d series", series, distinct, nodes)
	}

	sections := checkExclusiveSections(t, f.all)

	// Every process serves every query, with the same answer. Not always at
	// the first asking: compaction goes on, and a PostgreSQL session may
	// for a moment read a partitioned table without a partition another
	// session attached just before (store.renewPartitionViews), so each
	// query is asked until the answers agree.
	f.mu.Lock()
	live := append([]*member(nil), f.procs...)
	f.mu.Unlock()
	for _, q := range append(queries, "/api/public/traces/mp-trace-0") {
		deadline := time.Now().Add(10 * time.Second)
		for attempt := 1; ; attempt++ {
			problems := answersDiffer(t, live, q)
			if len(problems) == 0 {
				if attempt > 1 {
					t.Logf("GET %s: the processes answered alike at attempt %d", q, attempt)
				}
				break
			}
			if time.Now().After(deadline) {
				for _, p := range problems {
					t.Error(p)
				}
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	for _, m := range f.all {
		if n := len(m.logs.all(isRequest("GET /api/public/metrics/query", 200))); n == 0 && m.killed.IsZero() {
			t.Errorf("process %s answered no metric query during the run", m.name)
		}
	}
	t.Logf("%d acknowledged points and %d traces, %d lost; %d reads, %d failed; exclusive sections per lock: %v",
		len(ackedPoints), len(ackedTraces), lost, reads.Load(), len(failed), sections)
}

// answersDiffer asks every process q and says how their answers fail or differ.
func answersDiffer(t *testing.T, live []*member, q string) []string {
	var problems []string
	var first []byte
	for _, m := range live {
		resp := m.proc.Do(t, "GET", q, nil)
		switch {
		case resp.Status != 200:
			problems = append(problems, fmt.Sprintf("process %s: GET %s: %d %s", m.name, q, resp.Status, resp.Body))
		case first == nil:
			first = resp.Body
		case !bytes.Equal(first, resp.Body):
			problems = append(problems, fmt.Sprintf("GET %s: process %s answers differently from process %s:\n%s\n%s", q, m.name, live[0].name, clip(first), clip(resp.Body)))
		}
	}
	return problems
}

func isRequest(route string, status float64) func(map[string]any) bool {
	return func(l map[string]any) bool {
		return l["message"] == "request" && l["route"] == route && l["status"] == status
	}
}

// section is one process's hold of one exclusive lock, as its log says.
type section struct {
	process     string
	enter, exit time.Time
}

// checkExclusiveSections pairs every process's "exclusive section" enter and
// leave lines per lock (a process killed inside a section held it until it
// died; one still inside holds it now) and checks that no two sections of
// the same lock overlap in time, whichever processes held them. It returns
// how many sections each lock had and fails unless partition DDL, retention
// and compaction ran in more than one process.
func checkExclusiveSections(t *testing.T, members []*member) map[string]string {
	t.Helper()
	now := time.Now()
	byLock := map[string][]section{}
	for _, m := range members {
		type event struct {
			at    time.Time
			enter bool
		}
		events := map[string][]event{}
		for _, l := range m.logs.all(func(l map[string]any) bool { return l["message"] == "exclusive section" }) {
			at, err := time.Parse(time.RFC3339Nano, l["timestamp"].(string))
			if err != nil {
				t.Fatalf("process %s: log timestamp %v: %v", m.name, l["timestamp"], err)
			}
			lock := l["lock"].(string)
			events[lock] = append(events[lock], event{at, l["event"] == "enter"})
		}
		for lock, evs := range events {
			sort.Slice(evs, func(i, j int) bool { return evs[i].at.Before(evs[j].at) })
			for i := 0; i < len(evs); i += 2 {
				s := section{process: m.name, enter: evs[i].at}
				switch {
				case !evs[i].enter:
					t.Fatalf("process %s: lock %s left at %s without being entered", m.name, lock, evs[i].at)
				case i+1 < len(evs) && !evs[i+1].enter:
					s.exit = evs[i+1].at
				case i+1 == len(evs) && !m.killed.IsZero():
					s.exit = m.killed // died holding it; PostgreSQL released it with the connection
					if s.exit.Before(s.enter) {
						s.exit = s.enter // entered between the kill time and the signal
					}
				case i+1 == len(evs):
					s.exit = now // still inside (e.g. a retention pass under way)
				default:
					t.Fatalf("process %s: lock %s entered at %s and entered again before leaving", m.name, lock, evs[i].at)
				}
				byLock[lock] = append(byLock[lock], s)
			}
		}
	}
	summary := map[string]string{}
	for lock, secs := range byLock {
		sort.Slice(secs, func(i, j int) bool { return secs[i].enter.Before(secs[j].enter) })
		holders := map[string]int{}
		for i, s := range secs {
			holders[s.process]++
			if i > 0 && s.enter.Before(secs[i-1].exit) {
				t.Errorf("lock %s: process %s entered at %s while process %s held it (%s – %s)",
					lock, s.process, s.enter.Format(time.RFC3339Nano), secs[i-1].process,
					secs[i-1].enter.Format(time.RFC3339Nano), secs[i-1].exit.Format(time.RFC3339Nano))
			}
		}
		summary[lock] = fmt.Sprintf("%d sections in %d processes", len(secs), len(holders))
		if (lock == "partitions" || lock == "retention" || lock == "compaction") && len(holders) < 2 {
			t.Errorf("lock %s was held by %d process(es) only; the test must make them take turns", lock, len(holders))
		}
	}
	for _, lock := range []string{"migrations", "partitions", "retention"} {
		if len(byLock[lock]) == 0 {
			t.Errorf("no %s section was logged", lock)
		}
	}
	return summary
}

func clip(b []byte) string {
	s := string(b)
	if len(s) > 300 {
		return s[:300] + "…"
	}
	return strings.TrimSpace(s)
}

// explainLostPoints logs what a failure needs to be understood: the times
// of the lost points; every raw table (attached, detach pending, or
// detached) holding rows of the first lost time's day, read directly;
// detached chunk tables; the chunk rows of its window; and whether the
// points are visible again now (background passes go on meanwhile).
func explainLostPoints(t *testing.T, db *pgtest.DB, keys []string) {
	t.Helper()
	byTime := map[int64]int{}
	for _, k := range keys {
		var node string
		var ts int64
		if _, err := fmt.Sscanf(strings.Replace(k, "|", " ", 1), "%s %d", &node, &ts); err == nil {
			byTime[ts]++
		}
	}
	var times []int64
	for ts := range byTime {
		times = append(times, ts)
	}
	if len(times) == 0 {
		return
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	for _, ts := range times {
		t.Logf("lost: %d points at %s", byTime[ts], time.Unix(ts, 0).UTC().Format(time.RFC3339))
	}
	at := time.Unix(times[0], 0).UTC()
	const sameDay = `ts >= date_trunc('day', $1::timestamptz) AND ts < date_trunc('day', $1::timestamptz) + interval '1 day'`
	for _, row := range db.Rows(`SELECT c.relname, coalesce(i.inhparent::regclass::text, '-'), coalesce(i.inhdetachpending, false)
		FROM pg_class c LEFT JOIN pg_inherits i ON i.inhrelid = c.oid
		WHERE c.relkind = 'r' AND c.relpersistence <> 't' AND (c.relname LIKE 'metric_points_%' OR (c.relname LIKE 'metric_chunks_%' AND i.inhrelid IS NULL))
		ORDER BY 1`) {
		name := fmt.Sprint(row[0])
		if strings.HasPrefix(name, "metric_chunks_") {
			t.Logf("table %s is detached (%d rows)", name, db.Int(`SELECT count(*) FROM `+name))
		} else if n := db.Int(`SELECT count(*) FROM `+name+` WHERE `+sameDay, at); n > 0 || row[1] == "-" || row[2] == true {
			t.Logf("table %s: parent %s, detach pending %v, %d rows of the first lost time's day", name, row[1], row[2], n)
		}
	}
	for _, row := range db.Rows(`SELECT s.labels->>'node_id', c.start_ts, c.min_ts, c.max_ts, c.count, c.tableoid::regclass::text
		FROM metric_chunks c JOIN metric_series s ON s.id = c.series_id
		WHERE s.name = 'mp_gpu_utilization' AND c.start_ts <= $1 AND c.start_ts > $1 - interval '2 hours' ORDER BY 1 LIMIT 3`, at) {
		t.Logf("chunk of the first lost time's window: %v", row)
	}
	t.Logf("visible again now: %d of the points of the first lost time", db.Int(`SELECT count(*) FROM metrics WHERE name = 'mp_gpu_utilization' AND "timestamp" = $1`, at))
}

// logProblems logs the processes' errors and warnings, their answers other
// than 200 (but for readiness probes at startup), their compaction passes and
// the retention passes that dropped partitions.
func logProblems(t *testing.T, members []*member) {
	for _, m := range members {
		for _, l := range m.logs.all(func(l map[string]any) bool {
			return l["level"] == "ERROR" || l["level"] == "WARN" || l["message"] == "compaction pass" ||
				(l["message"] == "retention pass" && l["dropped_partitions"] != 0.0) ||
				(l["message"] == "request" && l["status"] != 200.0 && l["route"] != "GET /readyz")
		}) {
			t.Logf("process %s: %v", m.name, l)
		}
	}
}
