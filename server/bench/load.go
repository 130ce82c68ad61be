package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// ingest pushes every point over HTTP with several clients.
func ingest(base, token string, fl []series, o options, start time.Time) (float64, error) {
	// Bodies are encoded before the clock starts: the load generator's JSON
	// encoding would otherwise compete with the server for the same 2 cores.
	labels := make([][]byte, len(fl))
	for i, s := range fl {
		labels[i], _ = json.Marshal(s.labels)
	}
	model := newValueModel(fl)
	var encoded [][]byte
	body := make([]byte, 0, o.batch*110)
	n := 0
	emit := func() {
		body = append(body, "]}"...)
		encoded = append(encoded, body)
		body, n = make([]byte, 0, o.batch*110), 0
	}
	for step := 0; step < o.steps; step++ {
		ts := start.Add(time.Duration(step) * o.interval).Format(time.RFC3339)
		for si, s := range fl {
			if n == 0 {
				body = append(body, `{"metrics":[`...)
			} else {
				body = append(body, ',')
			}
			body = append(body, `{"name":"`...)
			body = append(body, s.name...)
			body = append(body, `","labels":`...)
			body = append(body, labels[si]...)
			body = append(body, `,"value":`...)
			body = strconv.AppendFloat(body, model.value(si), 'g', -1, 64)
			body = append(body, `,"timestamp":"`...)
			body = append(body, ts...)
			body = append(body, `"}`...)
			if n++; n == o.batch {
				emit()
			}
		}
	}
	if n > 0 {
		emit()
	}
	p, err := postAll(base+"/v1/metrics/batch", encoded, o.clients, http.StatusOK,
		"Authorization", "Bearer "+token, "Content-Type", "application/json")
	if err != nil {
		return 0, err
	}
	total := len(fl) * o.steps
	fmt.Printf("ingest over HTTP: %d points in %s (%d clients, %d points per request, %d retries after 429)\n",
		total, p.took.Round(time.Millisecond), o.clients, o.batch, p.retries)
	return float64(total) / p.took.Seconds(), nil
}

// posted is what postAll measured.
type posted struct {
	took    time.Duration
	retries int64
	latency [][]float64 // per client, each body's time (ms) until its answer, retries included
}

// postAll posts every body to url with the given number of concurrent
// clients and header pairs, each waiting for its answer before the next and
// retrying a 429 as senders do.
func postAll(url string, bodies [][]byte, clients, okStatus int, headers ...string) (posted, error) {
	queue := make(chan []byte, len(bodies))
	for _, b := range bodies {
		queue <- b
	}
	close(queue)
	client := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	defer client.CloseIdleConnections()
	latency := make([][]float64, clients)
	var wg sync.WaitGroup
	var firstErr atomic.Value
	var retries atomic.Int64
	began := time.Now()
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for body := range queue {
				start := time.Now()
				for attempt := 0; ; attempt++ {
					req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
					for i := 0; i+1 < len(headers); i += 2 {
						req.Header.Set(headers[i], headers[i+1])
					}
					resp, err := client.Do(req)
					if err == nil {
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode == okStatus {
							latency[c] = append(latency[c], float64(time.Since(start).Microseconds())/1000)
							break
						}
						if resp.StatusCode == http.StatusTooManyRequests && attempt < 100 {
							retries.Add(1)
							time.Sleep(50 * time.Millisecond)
							continue
						}
						err = fmt.Errorf("%s answered %d", url, resp.StatusCode)
					}
					firstErr.CompareAndSwap(nil, err)
					return
				}
			}
		}(c)
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return posted{}, err
	}
	return posted{took: time.Since(began), retries: retries.Load(), latency: latency}, nil
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
