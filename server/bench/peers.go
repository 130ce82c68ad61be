package main

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/prometheus/prompb"

	"github.com/xtrace-dev/xtrace-operator/internal/devproc"
	"github.com/xtrace-dev/xtrace-operator/server/internal/remotewrite"
)

// A peer is another time-series database, run as a private process, that
// gets the same fleet data by remote-write and the same PromQL queries, so
// its figures sit beside xtrace's from one run (-peers).
type peer struct {
	name string // the binary on PATH, and the key under "peers" in the JSON
	// args starts the peer with its data in dir, listening on addr.
	args func(dir, addr string) ([]string, error)
	// ready is polled until it answers 200.
	ready string
	// settle makes the written samples durable and queryable; it returns
	// the directory whose size is the peer's compacted storage ("" when
	// the data directory is all there is).
	settle func(base, dir string) (compacted string, err error)
}

var peers = []peer{
	{
		name: "prometheus",
		args: func(dir, addr string) ([]string, error) {
			cfg := filepath.Join(dir, "prometheus.yml")
			if err := os.WriteFile(cfg, []byte("global:\n  scrape_interval: 1m\n"), 0o644); err != nil {
				return nil, err
			}
			return []string{"--config.file=" + cfg, "--storage.tsdb.path=" + filepath.Join(dir, "data"),
				"--web.listen-address=" + addr, "--web.enable-remote-write-receiver", "--web.enable-admin-api",
				"--storage.tsdb.retention.time=10y", "--log.level=warn"}, nil
		},
		ready: "/-/ready",
		// A snapshot with the head writes every sample as a compacted block: the
		// size Prometheus settles at; the data directory (WAL, head chunks,
		// blocks) is what it holds right after ingest.
		settle: func(base, dir string) (string, error) {
			resp, err := http.Post(base+"/api/v1/admin/tsdb/snapshot?skip_head=false", "", nil)
			if err != nil {
				return "", err
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			name := between(string(body), `"name":"`, `"`)
			if resp.StatusCode != 200 || name == "" {
				return "", fmt.Errorf("snapshot: %d %s", resp.StatusCode, body)
			}
			return filepath.Join(dir, "data", "snapshots", name), nil
		},
	},
	{
		name: "victoria-metrics",
		args: func(dir, addr string) ([]string, error) {
			return []string{"-storageDataPath=" + filepath.Join(dir, "data"), "-httpListenAddr=" + addr,
				"-retentionPeriod=100y", "-search.disableCache", "-search.latencyOffset=0s", "-loggerLevel=ERROR"}, nil
		},
		ready: "/health",
		settle: func(base, _ string) (string, error) {
			resp, err := http.Get(base + "/internal/force_flush")
			if err != nil {
				return "", err
			}
			resp.Body.Close()
			return "", nil
		},
	},
}

// peerPhases measures every peer whose binary is on PATH.
func (b *bench) peerPhases() []phase {
	var out []phase
	for _, p := range peers {
		if _, err := exec.LookPath(p.name); err != nil {
			fmt.Printf("peers: %s not on PATH, skipped\n", p.name)
			continue
		}
		out = append(out, phase{"peer " + p.name, func(ctx context.Context) error { return b.measurePeer(ctx, p) }})
	}
	return out
}

func (b *bench) measurePeer(_ context.Context, p peer) error {
	dir, err := os.MkdirTemp(b.dataDir, p.name+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	port, err := devproc.FreePort()
	if err != nil {
		return err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	base := "http://" + addr
	args, err := p.args(dir, addr)
	if err != nil {
		return err
	}
	cmd := exec.Command(p.name, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	defer stopServer(cmd)
	if err := devproc.WaitOK(base+p.ready, 60*time.Second, nil); err != nil {
		return fmt.Errorf("%s: %w", p.name, err)
	}

	took, err := b.remoteWriteInOrder(base + "/api/v1/write")
	if err != nil {
		return fmt.Errorf("remote-write to %s: %w", p.name, err)
	}
	compacted, err := p.settle(base, dir)
	if err != nil {
		return fmt.Errorf("%s: %w", p.name, err)
	}
	r := map[string]float64{"remote_write_samples_per_s": round(float64(b.points())/took.Seconds(), 0)}
	// Compacted storage first: the whole data directory then includes it, so it is measured apart.
	if compacted != "" {
		size, err := dirSize(compacted)
		if err != nil {
			return err
		}
		r["compacted_bytes_per_point"] = round(float64(size)/float64(b.points()), 2)
		if err := os.RemoveAll(compacted); err != nil {
			return err
		}
	}
	size, err := dirSize(filepath.Join(dir, "data"))
	if err != nil {
		return err
	}
	r["bytes_per_point"] = round(float64(size)/float64(b.points()), 2)
	for _, q := range b.promqlMix() {
		ms, runs, err := measure(base, benchToken, q.path, b.o.reps)
		if err != nil {
			return fmt.Errorf("%s %s query: %w", p.name, q.name, err)
		}
		recordLatency(r, q.name, ms, runs)
	}
	fmt.Printf("peer %s: %d samples by remote-write in %s; %.2f bytes per point on disk\n", p.name, b.points(), took.Round(time.Millisecond), r["bytes_per_point"])
	b.peers[p.name] = r
	return nil
}

// remoteWriteInOrder sends the fleet profile by remote-write with o.clients
// writers, each owning a share of the series and sending them in time order:
// Prometheus rejects a sample older than its series' newest. The writers go
// in rounds of peerRoundSteps steps, so that no series falls behind the
// others by more than that: Prometheus also rejects samples more than an hour
// older than the newest of any series.
func (b *bench) remoteWriteInOrder(url string) (time.Duration, error) {
	const peerRoundSteps = 120 // 10 minutes of data at 5 s
	model := newValueModel(b.fleet)
	client := &http.Client{Timeout: 60 * time.Second}
	began := time.Now()
	for round := 0; round < b.o.steps; round += peerRoundSteps {
		last := min(round+peerRoundSteps, b.o.steps)
		var wg sync.WaitGroup
		errs := make(chan error, b.o.clients)
		for w := 0; w < b.o.clients; w++ {
			wg.Go(func() {
				var req prompb.WriteRequest
				flush := func() error {
					body, err := remotewrite.Encode(&req)
					if err != nil {
						return err
					}
					req.Timeseries = req.Timeseries[:0]
					return postRemoteWrite(client, url, body)
				}
				for step := round; step < last; step++ {
					ms := b.start.Add(time.Duration(step) * b.o.interval).UnixMilli()
					for si := w; si < len(b.fleet); si += b.o.clients {
						s := b.fleet[si]
						ts := prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: s.name}},
							Samples: []prompb.Sample{{Timestamp: ms, Value: model.value(si)}}}
						for k, v := range s.labels {
							ts.Labels = append(ts.Labels, prompb.Label{Name: k, Value: v})
						}
						req.Timeseries = append(req.Timeseries, ts)
						if len(req.Timeseries) == b.o.batch {
							if err := flush(); err != nil {
								errs <- err
								return
							}
						}
					}
				}
				if len(req.Timeseries) > 0 {
					if err := flush(); err != nil {
						errs <- err
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			return time.Since(began), err
		}
	}
	return time.Since(began), nil
}

func postRemoteWrite(client *http.Client, url string, body []byte) error {
	req, _ := http.NewRequest("POST", url, strings.NewReader(string(body)))
	req.Header.Set("Content-Type", remotewrite.ContentTypeV1)
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("answered %d: %s", resp.StatusCode, msg)
	}
	return nil
}

// dirSize is the apparent size of the files under dir.
func dirSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err == nil {
			n += info.Size()
		}
		return err
	})
	return n, err
}

func between(s, from, to string) string {
	_, after, ok := strings.Cut(s, from)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(after, to)
	return v
}

// reportPeers prints the peers' figures beside xtrace's.
func (b *bench) reportPeers() {
	names := []string{"xtrace"}
	for _, p := range peers {
		if b.peers[p.name] != nil {
			names = append(names, p.name)
		}
	}
	fmt.Printf("\n%-28s", "same data, same PromQL")
	for _, n := range names {
		fmt.Printf(" %18s", n)
	}
	fmt.Println()
	xt := map[string]float64{"bytes_per_point": b.result["bytes_per_point"], "compacted_bytes_per_point": b.result["closed_bytes_per_point"],
		"remote_write_samples_per_s": b.result["remote_write_samples_per_s"]}
	for _, q := range []string{"router", "dashboard", "fleet"} {
		for _, p := range []string{"p50", "p95"} {
			xt[q+"_"+p+"_ms"] = b.result["promql_"+q+"_"+p+"_ms"]
		}
	}
	for _, row := range []struct{ label, key, format string }{
		{"bytes per point on disk", "bytes_per_point", " %18.2f"},
		{"compacted bytes per point", "compacted_bytes_per_point", " %18.2f"},
		{"remote-write samples/s", "remote_write_samples_per_s", " %18.0f"},
		{"router p50 / p95 (ms)", "router", ""},
		{"dashboard p50 / p95 (ms)", "dashboard", ""},
		{"fleet p50 / p95 (ms)", "fleet", ""},
	} {
		fmt.Printf("%-28s", row.label)
		for _, n := range names {
			v := xt
			if n != "xtrace" {
				v = b.peers[n]
			}
			if row.format == "" {
				fmt.Printf(" %18s", fmt.Sprintf("%.2f / %.2f", v[row.key+"_p50_ms"], v[row.key+"_p95_ms"]))
			} else {
				fmt.Printf(row.format, v[row.key])
			}
		}
		fmt.Println()
	}
	fmt.Println("(xtrace: all tiers; compacted = chunks; queries are PromQL through each one's Prometheus API)")
}
