package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// ingest pushes every point over HTTP with several clients.
func ingest(base, token string, fl []series, o options, start time.Time) (float64, error) {
	type wire struct {
		Name      string            `json:"name"`
		Labels    map[string]string `json:"labels"`
		Value     float64           `json:"value"`
		Timestamp string            `json:"timestamp"`
	}
	// Bodies are encoded before the clock starts: the load generator's JSON
	// encoding would otherwise compete with the server for the same 2 cores.
	var encoded [][]byte
	batch := make([]wire, 0, o.batch)
	emit := func() {
		b, _ := json.Marshal(map[string]any{"metrics": batch})
		encoded = append(encoded, b)
		batch = batch[:0]
	}
	for step := 0; step < o.steps; step++ {
		ts := start.Add(time.Duration(step) * o.interval).Format(time.RFC3339)
		for si, s := range fl {
			batch = append(batch, wire{s.name, s.labels, value(si, step), ts})
			if len(batch) == o.batch {
				emit()
			}
		}
	}
	if len(batch) > 0 {
		emit()
	}
	bodies := make(chan []byte, len(encoded))
	for _, b := range encoded {
		bodies <- b
	}
	close(bodies)
	client := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: o.clients}}
	var wg sync.WaitGroup
	var firstErr atomic.Value
	var retries atomic.Int64
	began := time.Now()
	for c := 0; c < o.clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for body := range bodies {
				for attempt := 0; ; attempt++ {
					req, _ := http.NewRequest("POST", base+"/v1/metrics/batch", bytes.NewReader(body))
					req.Header.Set("Authorization", "Bearer "+token)
					req.Header.Set("Content-Type", "application/json")
					resp, err := client.Do(req)
					if err == nil {
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode == 200 {
							break
						}
						if resp.StatusCode == 429 && attempt < 100 {
							retries.Add(1)
							time.Sleep(50 * time.Millisecond)
							continue
						}
						err = fmt.Errorf("push answered %d", resp.StatusCode)
					}
					firstErr.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		for range bodies {
		}
		return 0, err
	}
	took := time.Since(began)
	n := len(fl) * o.steps
	fmt.Printf("ingest over HTTP: %d points in %s (%d clients, %d points per request, %d retries after 429)\n",
		n, took.Round(time.Millisecond), o.clients, o.batch, retries.Load())
	return float64(n) / took.Seconds(), nil
}

// traceIngest pushes o.traces gateway-shaped batches with o.clients clients and
// returns traces/s and the request latency percentiles.
func traceIngest(base, token string, o options) (float64, [3]float64, error) {
	if o.traces <= 0 {
		return 0, [3]float64{}, nil
	}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: o.clients}}
	next := make(chan int, o.traces)
	for i := 0; i < o.traces; i++ {
		next <- i
	}
	close(next)
	lat := make([][]float64, o.clients)
	var firstErr atomic.Value
	var wg sync.WaitGroup
	began := time.Now()
	for c := 0; c < o.clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for i := range next {
				ts := time.Now().UTC()
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
				req, _ := http.NewRequest("POST", base+"/v1/l/batch", bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+token)
				req.Header.Set("Content-Type", "application/json")
				start := time.Now()
				if err := send(client, req); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				lat[c] = append(lat[c], float64(time.Since(start).Microseconds())/1000)
			}
		}(c)
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return 0, [3]float64{}, err
	}
	took := time.Since(began)
	fmt.Printf("trace ingest: %d requests in %s\n", o.traces, took.Round(time.Millisecond))
	_, pct := percentiles(lat)
	return float64(o.traces) / took.Seconds(), pct, nil
}

// send does one request of a load loop; an answer other than 200 is an error.
func send(client *http.Client, req *http.Request) error {
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s %s answered %d", req.Method, req.URL.Path, resp.StatusCode)
	}
	return nil
}

// percentiles merges the clients' latencies (ms) and returns how many there
// were and their p50/p95/p99.
func percentiles(lat [][]float64) (int, [3]float64) {
	var all []float64
	for _, l := range lat {
		all = append(all, l...)
	}
	if len(all) == 0 {
		return 0, [3]float64{}
	}
	sort.Float64s(all)
	pct := func(p float64) float64 { return round(all[int(p*float64(len(all)-1)+0.5)], 2) }
	return len(all), [3]float64{pct(0.5), pct(0.95), pct(0.99)}
}
