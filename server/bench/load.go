package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

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
	latency := make([][]float64, clients)
	var wg sync.WaitGroup
	var firstErr atomic.Value
	var retries atomic.Int64
	began := time.Now()
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			client, err := newPoster(url, headers...)
			if err != nil {
				firstErr.CompareAndSwap(nil, err)
				return
			}
			defer client.close()
			for body := range queue {
				start := time.Now()
				for attempt := 0; ; attempt++ {
					status, err := client.post(body)
					if err == nil {
						if status == okStatus {
							latency[c] = append(latency[c], float64(time.Since(start).Microseconds())/1000)
							break
						}
						if status == http.StatusTooManyRequests && attempt < 100 {
							retries.Add(1)
							time.Sleep(50 * time.Millisecond)
							continue
						}
						err = fmt.Errorf("%s answered %d", url, status)
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

// poster is one load client's keep-alive HTTP/1.1 connection: it writes a
// prepared request head and the body, and reads the answer with net/http's
// parser. net/http's client hands each request between three goroutines
// (the caller's, the connection's writer and reader), which cost about
// 120 µs of CPU per small request here: CPU the server under test would
// otherwise have, on the same cores.
type poster struct {
	addr string
	head []byte // request line and headers up to Content-Length's value
	conn net.Conn
	r    *bufio.Reader
	buf  []byte
}

// postTimeout bounds one request and its answer.
const postTimeout = 60 * time.Second

func newPoster(rawURL string, headers ...string) (*poster, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" {
		return nil, fmt.Errorf("poster speaks plain http, not %q", u.Scheme)
	}
	head := "POST " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host + "\r\n"
	for i := 0; i+1 < len(headers); i += 2 {
		head += headers[i] + ": " + headers[i+1] + "\r\n"
	}
	return &poster{addr: u.Host, head: []byte(head + "Content-Length: ")}, nil
}

// post sends body and returns the answer's status, its body read and discarded.
func (p *poster) post(body []byte) (int, error) {
	if p.conn == nil {
		conn, err := net.Dial("tcp", p.addr)
		if err != nil {
			return 0, err
		}
		p.conn, p.r = conn, bufio.NewReader(conn)
	}
	// A server that stops answering fails the run rather than hanging it.
	if err := p.conn.SetDeadline(time.Now().Add(postTimeout)); err != nil {
		p.close()
		return 0, err
	}
	p.buf = append(append(p.buf[:0], p.head...), strconv.Itoa(len(body))...)
	p.buf = append(append(p.buf, "\r\n\r\n"...), body...)
	if _, err := p.conn.Write(p.buf); err != nil {
		p.close()
		return 0, err
	}
	resp, err := http.ReadResponse(p.r, nil)
	if err != nil {
		p.close()
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || resp.Close {
		p.close() // the next post dials again
	}
	return resp.StatusCode, err
}

func (p *poster) close() {
	if p.conn != nil {
		p.conn.Close()
		p.conn = nil
	}
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
