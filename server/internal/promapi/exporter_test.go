package promapi_test

import (
	"fmt"
	"math"
	"net"
	"net/http"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// exporter is a scrape target whose values follow the scrape number, so
// Prometheus and xtrace (through Prometheus' remote-write) receive the same
// known shapes: counters (one of which resets), gauges, a histogram, a
// series that disappears (Prometheus then writes a staleness marker), and
// the metric names of the Dynamo/Nebula documents.
type exporter struct {
	URL     string
	host    string
	mu      sync.Mutex
	scrapes int
	scraped chan int
}

// vanishAfter is the scrape after which demo_ephemeral is no longer exposed.
const vanishAfter = 8

func startExporter(t *testing.T) *exporter {
	t.Helper()
	e := &exporter{scraped: make(chan int, 1000)}
	reg := prometheus.NewRegistry()
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "demo_requests_total", Help: "Requests."}, []string{"code", "route"})
	nginx := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nginx_http_requests_total", Help: "Requests by status."}, []string{"status"})
	dynamo := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dynamo_frontend_requests_total", Help: "Frontend requests."}, []string{"model"})
	tokens := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "model_output_tokens_total", Help: "Output tokens."}, []string{"model_name"})
	util := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "DCGM_FI_DEV_GPU_UTIL", Help: "GPU utilisation."}, []string{"Hostname", "gpu"})
	temp := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "demo_temperature_celsius", Help: "Temperature."}, []string{"node"})
	ephemeral := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "demo_ephemeral", Help: "Exposed for the first scrapes only."}, []string{"id"})
	latency := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "nginx_http_request_duration_seconds", Help: "Latency.",
		Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5}})
	resets := &resettingCounter{}
	reg.MustRegister(requests, nginx, dynamo, tokens, util, temp, ephemeral, latency, resets)

	handler := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		e.scrapes++
		n := e.scrapes
		requests.WithLabelValues("200", "/a").Add(5)
		requests.WithLabelValues("200", "/b").Add(float64(n % 4))
		if n%3 == 0 {
			requests.WithLabelValues("500", "/a").Inc()
		}
		requests.WithLabelValues("503", "/b").Add(2)
		nginx.WithLabelValues("200").Add(10)
		nginx.WithLabelValues("502").Add(float64(n % 3))
		nginx.WithLabelValues("504").Add(0.5)
		dynamo.WithLabelValues("qwen").Add(3)
		dynamo.WithLabelValues("llama").Add(float64(n % 5))
		tokens.WithLabelValues("qwen").Add(float64(100 + 7*n))
		tokens.WithLabelValues("llama").Add(float64(40 * (n % 2)))
		for gpu := 0; gpu < 4; gpu++ {
			for _, host := range []string{"node-1", "node-2"} {
				util.WithLabelValues(host, fmt.Sprint(gpu)).Set(float64((n*7 + gpu*13 + len(host)*n) % 101))
			}
		}
		temp.WithLabelValues("node-1").Set(60 + 10*math.Sin(float64(n)/3))
		temp.WithLabelValues("node-2").Set(55 + float64(n)/7)
		if n <= vanishAfter {
			ephemeral.WithLabelValues("x").Set(float64(n))
		} else {
			ephemeral.Reset()
		}
		for i := 0; i < 3; i++ {
			latency.Observe(float64((n*37+i*53)%300) / 100) // 0 … 2.99 s
		}
		resets.scrape = n
		e.mu.Unlock()
		handler.ServeHTTP(w, r)
		select {
		case e.scraped <- n:
		default:
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	e.host = ln.Addr().String()
	e.URL = "http://" + e.host
	return e
}

// resettingCounter is a counter that restarts from a small value at scrape
// 11, as a restarted process's counter does.
type resettingCounter struct{ scrape int }

var resetsDesc = prometheus.NewDesc("demo_restarts_total", "A counter that resets.", nil, nil)

func (c *resettingCounter) Describe(ch chan<- *prometheus.Desc) { ch <- resetsDesc }
func (c *resettingCounter) Collect(ch chan<- prometheus.Metric) {
	v := float64(9 * c.scrape)
	if c.scrape >= 11 {
		v = float64(4 * (c.scrape - 10))
	}
	ch <- prometheus.MustNewConstMetric(resetsDesc, prometheus.CounterValue, v)
}
