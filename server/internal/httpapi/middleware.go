package httpapi

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/xtrace-dev/xtrace-operator/internal/logging"
	"github.com/xtrace-dev/xtrace-operator/server/internal/errs"
	"github.com/xtrace-dev/xtrace-operator/server/internal/ingest"
	"github.com/xtrace-dev/xtrace-operator/server/internal/store"
)

// handlerFunc is an HTTP handler that returns its error for writeError.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

type ctxKey int

const authKeyKey ctxKey = iota

func authKey(ctx context.Context) string {
	k, _ := ctx.Value(authKeyKey).(string)
	return k
}

// statusRecorder remembers the status for the access log and metrics.
type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(b)
	s.bytes += n
	return n, err
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// validRequestID accepts client ids that are safe to echo and log.
func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, c := range id {
		if c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}

func newRequestID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// routeOptions say which middleware a route gets.
type routeOptions struct {
	public      bool          // no authentication (health, metrics)
	rateLimited bool          // per-key token bucket (query routes)
	timeout     time.Duration // per-request deadline
	always      bool          // answered during shutdown too (health probes)
	ingest      bool          // submits writes: the connection names the client to the ingest queues
	// writeError answers failures; nil is the xtrace error model (writeError).
	writeError errorWriter
}

// errorWriter writes an error response in one API's error shape.
type errorWriter func(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error)

// wrap applies the middleware in their declared order:
// request id → recovery → access log + metrics → shutdown gate → auth → schema gate → rate limit → body limit → timeout → handler.
func (a *API) wrap(pattern string, opts routeOptions, h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get("X-Request-Id")
		if !validRequestID(id) {
			id = newRequestID()
		}
		w.Header().Set("X-Request-Id", id)
		ctx := logging.WithRequestID(r.Context(), id)
		if trace := requestTraceID(r); trace != "" {
			ctx = logging.WithTraceID(ctx, trace)
		}
		// The store records on the route which pool answered the request's reads.
		route := store.NewReadRoute(store.ReadAnywhere)
		ctx = store.WithReadRoute(ctx, route)
		if opts.ingest {
			ctx = ingest.WithClient(ctx, r.RemoteAddr)
		}
		r = r.WithContext(ctx)
		rec := &statusRecorder{ResponseWriter: w}
		fail := opts.writeError
		if fail == nil {
			fail = writeError
		}

		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				a.log.ErrorContext(ctx, "panic in handler", "route", pattern, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
				if rec.status == 0 {
					fail(rec, r, a.log, fmt.Errorf("panic: %v", p))
				}
			}
			took := time.Since(start)
			a.tel.Requests.WithLabelValues(pattern, strconv.Itoa(rec.status)).Inc()
			a.tel.RequestDuration.WithLabelValues(pattern).Observe(took.Seconds())
			pool := route.Served()
			if pool != "" {
				a.tel.ReadRequests.WithLabelValues(pattern, pool).Inc()
			}
			if !a.log.Enabled(ctx, slog.LevelInfo) {
				return // the attributes below are allocated on every request otherwise
			}
			attrs := []any{"method", r.Method, "route", pattern, "status", rec.status,
				"duration_ms", float64(took.Microseconds()) / 1000, "bytes", rec.bytes}
			if pool != "" {
				attrs = append(attrs, "pool", pool)
			}
			a.log.InfoContext(ctx, "request", attrs...)
		}()

		if err := a.serve(rec, r, opts, route, h); err != nil {
			fail(rec, r, a.log, err)
		}
	})
}

// ConsistencyHeader lets a request ask to see every committed write: with
// "strong" its reads go to the primary, never to a read replica (which may
// lag by up to XTRACE_READ_MAX_LAG). "eventual", the default, lets a fit
// replica answer.
const ConsistencyHeader = "X-Xtrace-Consistency"

func wantsStrongReads(r *http.Request) (bool, error) {
	switch v := strings.ToLower(strings.TrimSpace(r.Header.Get(ConsistencyHeader))); v {
	case "", "eventual":
		return false, nil
	case "strong":
		return true, nil
	default:
		return false, errs.InvalidField(ConsistencyHeader, "%q is not one of strong, eventual", clip(v, 32))
	}
}

// requestTraceID is the trace a request concerns, for log lines: the W3C
// traceparent header's trace id, or a Langfuse trace id in the path.
func requestTraceID(r *http.Request) string {
	if tp := r.Header.Get("Traceparent"); len(tp) >= 55 && tp[2] == '-' && tp[35] == '-' {
		if id := tp[3:35]; isHex(id) {
			return id
		}
	}
	if id := r.PathValue("traceId"); id != "" && validRequestID(id) {
		return id
	}
	return ""
}

func isHex(s string) bool {
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func (a *API) serve(w http.ResponseWriter, r *http.Request, opts routeOptions, route *store.ReadRoute, h handlerFunc) error {
	if !opts.always && a.shuttingDown.Load() {
		return errShuttingDown
	}
	if !opts.public {
		key, ok := a.authenticate(r)
		if !ok {
			return errUnauthorized
		}
		r = r.WithContext(context.WithValue(r.Context(), authKeyKey, key))
		if !a.schemaReady.Load() {
			return errSchemaNotReady
		}
		if strong, err := wantsStrongReads(r); err != nil {
			return err
		} else if strong {
			route.RequirePrimary()
		}
	}
	if opts.rateLimited {
		if err := a.limiter.allow(authKey(r.Context()), a.now()); err != nil {
			a.tel.RateLimited.WithLabelValues(r.Pattern).Inc()
			return err
		}
	}
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = http.MaxBytesReader(w, r.Body, a.cfg.MaxRequestBodyBytes)
	}
	if opts.timeout > 0 {
		ctx, cancel := context.WithTimeout(r.Context(), opts.timeout)
		defer cancel()
		r = r.WithContext(ctx)
	}
	return h(w, r)
}

// authenticate checks the Authorization header against every configured
// credential in constant time and returns the rate-limit key.
func (a *API) authenticate(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, cred, found := strings.Cut(h, " ")
	if !found {
		return "", false
	}
	cred = strings.TrimSpace(cred)
	switch strings.ToLower(scheme) {
	case "bearer":
		ok := 0
		for _, tok := range a.tokens {
			ok |= subtle.ConstantTimeCompare(digest(cred), tok)
		}
		if ok == 1 {
			return "bearer:" + hex.EncodeToString(digest(cred)[:8]), true
		}
	case "basic":
		raw, err := base64.StdEncoding.DecodeString(cred)
		if err != nil || a.cfg.PublicKey == "" {
			return "", false
		}
		pub, secret, _ := strings.Cut(string(raw), ":")
		okPub := subtle.ConstantTimeCompare(digest(pub), digest(a.cfg.PublicKey))
		okSecret := subtle.ConstantTimeCompare(digest(secret), digest(a.cfg.SecretKey))
		if okPub&okSecret == 1 {
			return "basic:" + pub, true
		}
	}
	return "", false
}

// digest makes comparisons constant-time regardless of length.
func digest(s string) []byte {
	d := sha256.Sum256([]byte(s))
	return d[:]
}
