// Package httpapi is the HTTP layer: routes, middleware, handlers and the
// mapping of errors to the error model. Handlers validate, then call the
// ingest queue or the store; they hold no SQL.
package httpapi

import (
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/xtrace-dev/xtrace-operator/server/internal/config"
	"github.com/xtrace-dev/xtrace-operator/server/internal/errs"
	"github.com/xtrace-dev/xtrace-operator/server/internal/ingest"
	"github.com/xtrace-dev/xtrace-operator/server/internal/metrics"
	"github.com/xtrace-dev/xtrace-operator/server/internal/promapi"
	"github.com/xtrace-dev/xtrace-operator/server/internal/store"
	"github.com/xtrace-dev/xtrace-operator/server/internal/telemetry"
	"github.com/xtrace-dev/xtrace-operator/server/internal/ui"
	"github.com/xtrace-dev/xtrace-operator/server/internal/version"
)

// Deps are what the API needs.
type Deps struct {
	Config    *config.Config
	Store     *store.Store
	Points    *ingest.Batcher[metrics.Point]
	Traces    *ingest.Batcher[*store.TraceWrite]
	Telemetry *telemetry.Metrics
	Log       *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// API serves the xtrace HTTP endpoints.
type API struct {
	cfg        *config.Config
	store      *store.Store
	points     *ingest.Batcher[metrics.Point]
	traceQueue *ingest.Batcher[*store.TraceWrite]
	tel        *telemetry.Metrics
	log        *slog.Logger
	now        func() time.Time
	tokens     [][]byte
	limiter    *keyedLimiter
	bodies     *bodyBudget
	prom       *promapi.API
	mux        *http.ServeMux

	shuttingDown atomic.Bool
	schemaReady  atomic.Bool
}

// Timeouts per kind of route.
const (
	queryTimeout  = 15 * time.Second
	ingestTimeout = 30 * time.Second
	// bodyBudgetWait is how long an ingest request waits for room in the body budget before a 429.
	bodyBudgetWait = 2 * time.Second
)

// New builds the API and its routes.
func New(d Deps) *API {
	a := &API{
		cfg: d.Config, store: d.Store, points: d.Points, traceQueue: d.Traces, tel: d.Telemetry, log: d.Log, now: d.Now,
		limiter: newKeyedLimiter(d.Config.RateLimitQPS, d.Config.RateLimitBurst),
		bodies:  newBodyBudget(d.Config.IngestMemoryBytes, bodyBudgetWait),
		mux:     http.NewServeMux(),
	}
	if a.now == nil {
		a.now = time.Now
	}
	for _, t := range d.Config.BearerTokens {
		a.tokens = append(a.tokens, digest(t))
	}

	health := routeOptions{public: true, always: true, timeout: 5 * time.Second}
	ingestRoute := routeOptions{timeout: ingestTimeout, ingest: true}
	query := routeOptions{rateLimited: true, timeout: queryTimeout}

	a.handle("GET /healthz", health, a.healthz)
	a.handle("GET /readyz", health, a.readyz)
	exposition := promhttp.HandlerFor(a.tel.Registry, promhttp.HandlerOpts{})
	a.mux.Handle("GET /metrics", a.wrap("GET /metrics", health, func(w http.ResponseWriter, r *http.Request) error {
		exposition.ServeHTTP(w, r)
		return nil
	}))
	a.handle("GET /api/public/health", routeOptions{public: true, timeout: 5 * time.Second}, a.publicHealth)

	a.handle("POST /v1/metrics/batch", ingestRoute, a.pushMetrics)
	a.handle("GET /api/public/metrics/query", query, a.queryMetrics)
	a.handle("GET /api/public/metrics/names", query, a.metricNames)
	a.handle("GET /api/public/metrics/labels", query, a.metricLabels)

	a.prometheusRoutes(ingestRoute)

	a.handle("POST /v1/l/batch", ingestRoute, a.nativeBatch)
	a.handle("POST /api/public/ingestion", ingestRoute, a.ingestion)
	a.handle("POST /api/public/otel/v1/traces", ingestRoute, a.otlpTraces)
	a.handle("POST /v1/traces", ingestRoute, a.otlpTraces)
	a.handle("GET /api/public/traces", query, a.listTraces)
	a.handle("GET /api/public/traces/{traceId}", query, a.getTrace)
	a.handle("GET /api/public/observations", query, a.listObservations)
	a.handle("GET /api/public/observations/{observationId}", query, a.getObservation)
	a.handle("GET /api/public/sessions", query, a.listSessions)
	a.handle("GET /api/public/sessions/{sessionId}", query, a.getSession)
	a.handle("GET /api/public/metrics/daily", query, a.dailyMetrics)
	a.handle("GET /api/public/projects", query, a.projects)

	// The web UI: public files; its data comes from the authenticated API above.
	webUI := ui.New()
	a.handle("GET "+ui.Prefix, routeOptions{public: true}, func(w http.ResponseWriter, r *http.Request) error {
		webUI.ServeHTTP(w, r)
		return nil
	})
	a.handle("GET /{$}", routeOptions{public: true}, func(w http.ResponseWriter, r *http.Request) error {
		if !ui.WantsHTML(r) {
			return errs.NotFoundf("no route for %s /; the API lives under /api/public and /v1", r.Method)
		}
		http.Redirect(w, r, ui.Prefix, http.StatusFound)
		return nil
	})
	a.handle("/", routeOptions{public: true}, a.noRoute)
	return a
}

// prometheusRoutes: remote-write and OTLP metrics in; the Prometheus HTTP
// API's read endpoints out, with Prometheus-shaped errors (also for 401 and
// 429 from the middleware) and the same auth and per-token query budget as
// every query route. GET and form-encoded POST, as Grafana sends them.
func (a *API) prometheusRoutes(ingestRoute routeOptions) {
	a.handle("POST /api/v1/write", ingestRoute, a.remoteWrite)
	a.handle("POST /v1/metrics", ingestRoute, a.otlpMetrics)
	a.handle("POST /api/public/otel/v1/metrics", ingestRoute, a.otlpMetrics)

	a.prom = promapi.New(promapi.Options{
		Reader:        a.store,
		Project:       func(*http.Request) string { return a.cfg.DefaultProjectID },
		LookbackDelta: a.cfg.PromQL.LookbackDelta, MaxSamples: a.cfg.PromQL.MaxSamples,
		Timeout: a.cfg.PromQL.Timeout, MaxConcurrent: a.cfg.PromQL.MaxConcurrent,
		Log: a.log, Now: a.now, Version: version.Version,
	})
	// The engine's own timeout answers first ("timeout", 503); the route's is a backstop.
	evaluate := routeOptions{rateLimited: true, timeout: a.cfg.PromQL.Timeout + 5*time.Second, writeError: writePromError}
	list := routeOptions{rateLimited: true, timeout: queryTimeout, writeError: writePromError}
	for _, method := range []string{"GET ", "POST "} {
		a.handle(method+"/api/v1/query", evaluate, a.prom.Query)
		a.handle(method+"/api/v1/query_range", evaluate, a.prom.QueryRange)
		a.handle(method+"/api/v1/series", list, a.prom.Series)
		a.handle(method+"/api/v1/labels", list, a.prom.LabelNames)
		a.handle(method+"/api/v1/query_exemplars", list, a.prom.QueryExemplars)
	}
	a.handle("GET /api/v1/label/{name}/values", list, a.prom.LabelValues)
	a.handle("GET /api/v1/metadata", list, a.prom.Metadata)
	a.handle("GET /api/v1/status/buildinfo", list, a.prom.BuildInfo)
	a.handle(promPrefix, routeOptions{public: true, writeError: writePromError}, a.noRoute)
}

// promPrefix catches the Prometheus API paths xtrace does not serve.
const promPrefix = "/api/v1/"

// noRoute answers requests no pattern takes: 405 with Allow when the path
// exists for other methods, else 404.
func (a *API) noRoute(w http.ResponseWriter, r *http.Request) error {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := a.mux.Handler(probe); pattern != "/" && pattern != promPrefix && pattern != "" {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 && !slices.Contains(allow, r.Method) {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		return methodNotAllowed(fmt.Sprintf("method %s is not allowed on %s; use %s", r.Method, clip(r.URL.Path, 200), strings.Join(allow, ", ")))
	}
	return errs.NotFoundf("no route for %s %s", clip(r.Method, 16), clip(r.URL.Path, 200))
}

func (a *API) handle(pattern string, opts routeOptions, h handlerFunc) {
	a.mux.Handle(pattern, a.wrap(pattern, opts, h))
}

// Handler returns the root handler.
func (a *API) Handler() http.Handler { return a.mux }

// SetSchemaReady marks the migrations as applied; until then /readyz is 503.
func (a *API) SetSchemaReady() { a.schemaReady.Store(true) }

// StartShutdown makes /readyz report not-ready and new requests get 503,
// while requests already in flight finish.
func (a *API) StartShutdown() { a.shuttingDown.Store(true) }
