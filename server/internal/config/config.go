// Package config reads the server's settings from the environment (SPEC §3.1).
// Every value is validated once at start; a bad one stops the server with a
// message naming the variable.
package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Config is the validated server configuration.
type Config struct {
	// DatabaseURL is empty when the libpq PG* variables are used instead.
	DatabaseURL          string
	BearerTokens         []string
	BindAddr             string
	DefaultProjectID     string
	PublicKey            string
	SecretKey            string
	RateLimitQPS         float64
	RateLimitBurst       int
	MetricsRetentionDays int
	TracesRetentionDays  int
	RetentionInterval    time.Duration
	// CompactionInterval is the period of the compactor; 0 disables it.
	CompactionInterval  time.Duration
	MaxRequestBodyBytes int64
	// IngestMemoryBytes bounds the bytes of request bodies being read, parsed
	// or waiting for their commit at once; beyond it ingest requests get 429.
	IngestMemoryBytes int64
	DBMaxConns        int32
	LogFormat         string // json | text
	LogLevel          string // debug | info | warn | error
	// MaxSeriesPerRequest bounds the series one ingest request may create.
	MaxSeriesPerRequest int
	// PromQL settings of the Prometheus API.
	PromQL PromQLConfig

	// DatabaseReadURLs are read replicas' connection strings (DATABASE_READ_URL).
	DatabaseReadURLs []string
	// DatabaseReadHosts are read replicas reached with the primary's settings
	// and another host, "host" or "host:port" (DATABASE_READ_HOST).
	DatabaseReadHosts []string
	// ReadMaxLag: a replica whose replay lag is larger is skipped (XTRACE_READ_MAX_LAG).
	ReadMaxLag time.Duration
}

// PromQLConfig configures the PromQL engine behind the Prometheus API.
type PromQLConfig struct {
	LookbackDelta time.Duration
	// MaxSamples bounds the samples one query reads from the store and holds in memory.
	MaxSamples    int
	Timeout       time.Duration
	MaxConcurrent int
}

// Defaults as documented in the README.
const (
	DefaultBindAddr            = "127.0.0.1:8742"
	DefaultProjectID           = "default"
	DefaultRateLimitQPS        = 20
	DefaultRateLimitBurst      = 40
	DefaultMetricsRetention    = 30
	DefaultTracesRetention     = 90
	DefaultRetentionInterval   = time.Hour
	DefaultCompactionInterval  = 30 * time.Second
	DefaultMaxRequestBodyBytes = 20 << 20
	DefaultIngestMemoryBytes   = 64 << 20
	DefaultDBMaxConns          = 20
	DefaultMaxSeriesPerRequest = 10000
	DefaultPromQLLookback      = 5 * time.Minute
	DefaultPromQLMaxSamples    = 20_000_000
	DefaultPromQLTimeout       = 30 * time.Second
	DefaultPromQLConcurrency   = 8
	DefaultReadMaxLag          = 2 * time.Second
)

// Mode says which settings a subcommand needs.
type Mode int

const (
	// ModeServe needs the database and the API credentials.
	ModeServe Mode = iota
	// ModeDatabaseOnly (migrate, retention) needs only the database settings.
	ModeDatabaseOnly
)

// Load reads the configuration through getenv (os.Getenv in production).
func Load(getenv func(string) string, mode Mode) (*Config, error) {
	p := parser{getenv: getenv}
	c := &Config{
		DatabaseURL:          strings.TrimSpace(getenv("DATABASE_URL")),
		BindAddr:             p.str("BIND_ADDR", DefaultBindAddr),
		DefaultProjectID:     p.str("DEFAULT_PROJECT_ID", DefaultProjectID),
		PublicKey:            p.firstOf("XTRACE_PUBLIC_KEY", "LANGFUSE_PUBLIC_KEY"),
		SecretKey:            p.firstOf("XTRACE_SECRET_KEY", "LANGFUSE_SECRET_KEY"),
		RateLimitQPS:         p.positiveFloat("RATE_LIMIT_QPS", DefaultRateLimitQPS),
		RateLimitBurst:       p.intAtLeast("RATE_LIMIT_BURST", DefaultRateLimitBurst, 1),
		MetricsRetentionDays: p.intAtLeast("METRICS_RETENTION_DAYS", DefaultMetricsRetention, 1),
		TracesRetentionDays:  p.intAtLeast("TRACES_RETENTION_DAYS", DefaultTracesRetention, 1),
		RetentionInterval:    p.duration("XTRACE_RETENTION_INTERVAL", DefaultRetentionInterval),
		CompactionInterval:   p.duration("XTRACE_COMPACTION_INTERVAL", DefaultCompactionInterval),
		MaxRequestBodyBytes:  int64(p.intAtLeast("XTRACE_MAX_REQUEST_BODY_BYTES", DefaultMaxRequestBodyBytes, 1024)),
		IngestMemoryBytes:    int64(p.intAtLeast("XTRACE_INGEST_MEMORY_BYTES", DefaultIngestMemoryBytes, 1<<20)),
		DBMaxConns:           int32(p.intAtLeast("XTRACE_DB_MAX_CONNS", DefaultDBMaxConns, 2)),
		LogFormat:            p.oneOf("XTRACE_LOG_FORMAT", "json", "json", "text"),
		LogLevel:             p.oneOf("XTRACE_LOG_LEVEL", "info", "debug", "info", "warn", "error"),
		MaxSeriesPerRequest:  p.intAtLeast("XTRACE_MAX_SERIES_PER_REQUEST", DefaultMaxSeriesPerRequest, 1),
		PromQL: PromQLConfig{
			LookbackDelta: p.positiveDuration("XTRACE_PROMQL_LOOKBACK_DELTA", DefaultPromQLLookback),
			MaxSamples:    p.intAtLeast("XTRACE_PROMQL_MAX_SAMPLES", DefaultPromQLMaxSamples, 1000),
			Timeout:       p.positiveDuration("XTRACE_PROMQL_TIMEOUT", DefaultPromQLTimeout),
			MaxConcurrent: p.intAtLeast("XTRACE_PROMQL_MAX_CONCURRENT_QUERIES", DefaultPromQLConcurrency, 1),
		},
		DatabaseReadURLs:  p.readURLs("DATABASE_READ_URL"),
		DatabaseReadHosts: p.readHosts("DATABASE_READ_HOST"),
		ReadMaxLag:        p.positiveDuration("XTRACE_READ_MAX_LAG", DefaultReadMaxLag),
	}
	if len(c.DatabaseReadURLs) > 0 && len(c.DatabaseReadHosts) > 0 {
		p.fail("DATABASE_READ_HOST", "set at most one of DATABASE_READ_URL and DATABASE_READ_HOST")
	}
	for _, tok := range strings.Split(getenv("API_BEARER_TOKEN"), ",") {
		if tok = strings.TrimSpace(tok); tok != "" {
			c.BearerTokens = append(c.BearerTokens, tok)
		}
	}

	if c.DatabaseURL == "" && getenv("PGHOST") == "" && getenv("PGDATABASE") == "" {
		p.fail("DATABASE_URL", "not set (nor PGHOST/PGDATABASE): set DATABASE_URL=postgres://user:pass@host:5432/db or the libpq PG* variables")
	}
	if (c.PublicKey == "") != (c.SecretKey == "") {
		p.fail("XTRACE_SECRET_KEY", "XTRACE_PUBLIC_KEY and XTRACE_SECRET_KEY must be set together")
	}
	if mode == ModeServe && len(c.BearerTokens) == 0 {
		p.fail("API_BEARER_TOKEN", "required: set one token or several separated by commas")
	}
	if c.DefaultProjectID == "" {
		p.fail("DEFAULT_PROJECT_ID", "must not be empty")
	}
	if len(p.errs) > 0 {
		return nil, errors.Join(p.errs...)
	}
	return c, nil
}

// LogValue keeps secrets out of logs: it lists settings, not credentials.
func (c *Config) LogValue() []any {
	return []any{
		"bind_addr", c.BindAddr,
		"database", redactURL(c.DatabaseURL),
		"bearer_tokens", len(c.BearerTokens),
		"basic_auth", c.PublicKey != "",
		"default_project_id", c.DefaultProjectID,
		"rate_limit_qps", c.RateLimitQPS,
		"rate_limit_burst", c.RateLimitBurst,
		"metrics_retention_days", c.MetricsRetentionDays,
		"traces_retention_days", c.TracesRetentionDays,
		"retention_interval", c.RetentionInterval.String(),
		"compaction_interval", c.CompactionInterval.String(),
		"max_request_body_bytes", c.MaxRequestBodyBytes,
		"ingest_memory_bytes", c.IngestMemoryBytes,
		"db_max_conns", c.DBMaxConns,
		"max_series_per_request", c.MaxSeriesPerRequest,
		"promql_lookback_delta", c.PromQL.LookbackDelta.String(),
		"promql_max_samples", c.PromQL.MaxSamples,
		"promql_timeout", c.PromQL.Timeout.String(),
		"promql_max_concurrent_queries", c.PromQL.MaxConcurrent,
		"read_replicas", c.readReplicas(),
		"read_max_lag", c.ReadMaxLag.String(),
	}
}

// readReplicas names the read replicas without credentials.
func (c *Config) readReplicas() []string {
	out := slices.Clone(c.DatabaseReadHosts)
	for _, u := range c.DatabaseReadURLs {
		out = append(out, redactURL(u))
	}
	return out
}

// redactURL drops everything but scheme, host and database name.
func redactURL(u string) string {
	if u == "" {
		return "(libpq environment)"
	}
	at := strings.LastIndex(u, "@")
	scheme := strings.Index(u, "://")
	if scheme < 0 {
		return "(keyword/value connection string)"
	}
	rest := u[scheme+3:]
	if at > scheme {
		rest = u[at+1:]
	}
	if q := strings.IndexByte(rest, '?'); q >= 0 {
		rest = rest[:q]
	}
	return u[:scheme+3] + rest
}

type parser struct {
	getenv func(string) string
	errs   []error
}

func (p *parser) fail(name, msg string) { p.errs = append(p.errs, fmt.Errorf("%s: %s", name, msg)) }

func (p *parser) str(name, def string) string {
	if v := strings.TrimSpace(p.getenv(name)); v != "" {
		return v
	}
	return def
}

func (p *parser) firstOf(names ...string) string {
	for _, n := range names {
		if v := strings.TrimSpace(p.getenv(n)); v != "" {
			return v
		}
	}
	return ""
}

func (p *parser) positiveFloat(name string, def float64) float64 {
	v := strings.TrimSpace(p.getenv(name))
	if v == "" {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f <= 0 || math.IsInf(f, 0) || math.IsNaN(f) {
		p.fail(name, fmt.Sprintf("%q is not a positive number", v))
		return def
	}
	return f
}

func (p *parser) intAtLeast(name string, def, min int) int {
	v := strings.TrimSpace(p.getenv(name))
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < min {
		p.fail(name, fmt.Sprintf("%q is not an integer ≥ %d", v, min))
		return def
	}
	return n
}

func (p *parser) duration(name string, def time.Duration) time.Duration {
	v := strings.TrimSpace(p.getenv(name))
	if v == "" {
		return def
	}
	if v == "0" {
		return 0
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		p.fail(name, fmt.Sprintf("%q is not a duration like 1h or 30m (0 disables)", v))
		return def
	}
	return d
}

// positiveDuration is a duration > 0 (a bare number is not accepted: say the unit).
func (p *parser) positiveDuration(name string, def time.Duration) time.Duration {
	v := strings.TrimSpace(p.getenv(name))
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		p.fail(name, fmt.Sprintf("%q is not a positive duration like 5m or 500ms", v))
		return def
	}
	return d
}

// readURLs splits DATABASE_READ_URL: several postgres:// URLs separated by
// commas. A comma not followed by a new URL ("scheme://") belongs to the URL
// (libpq's multi-host form, postgres://h1,h2/db). A single keyword/value string
// ("host=... dbname=...") is accepted too.
func (p *parser) readURLs(name string) []string {
	v := strings.TrimSpace(p.getenv(name))
	if v == "" {
		return nil
	}
	var out []string
	start := 0
	for i := 0; i < len(v); i++ {
		if v[i] == ',' && startsWithScheme(strings.TrimLeft(v[i+1:], " ")) {
			out = append(out, strings.TrimSpace(v[start:i]))
			start = i + 1
		}
	}
	out = append(out, strings.TrimSpace(v[start:]))
	for i, u := range out {
		// Never quote the value: it holds a password.
		switch {
		case hasPostgresScheme(u):
			if parsed, err := url.Parse(u); err != nil || parsed.Host == "" {
				p.fail(name, fmt.Sprintf("entry %d of %d is not a valid postgres://user:password@host:port/db URL", i+1, len(out)))
			}
		case len(out) > 1 || !strings.Contains(u, "="):
			p.fail(name, fmt.Sprintf("entry %d of %d is not a postgres:// URL (separate several URLs with commas)", i+1, len(out)))
		}
	}
	return out
}

// startsWithScheme: s begins like a URL ("scheme://").
func startsWithScheme(s string) bool {
	scheme, _, ok := strings.Cut(s, "://")
	if !ok || scheme == "" {
		return false
	}
	for i, c := range scheme {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return false
		}
	}
	return true
}

func hasPostgresScheme(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// readHosts splits DATABASE_READ_HOST: comma-separated "host" or
// "host:port" ("[v6::addr]:port").
func (p *parser) readHosts(name string) []string {
	v := strings.TrimSpace(p.getenv(name))
	if v == "" {
		return nil
	}
	var out []string
	for _, h := range strings.Split(v, ",") {
		h = strings.TrimSpace(h)
		if !validReadHost(h) {
			p.fail(name, fmt.Sprintf("%q is not a host or host:port (port 1-65535)", h))
			continue
		}
		out = append(out, h)
	}
	return out
}

func validReadHost(h string) bool {
	if h == "" || strings.ContainsAny(h, " \t/@?#=") {
		return false
	}
	host, port, err := net.SplitHostPort(h)
	if err != nil {
		// A bare host name or IPv4 address, an IPv6 address, or one in brackets.
		bare := strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
		return !strings.Contains(h, "]:") && (strings.Count(h, ":") != 1) && bare != ""
	}
	n, err := strconv.Atoi(port)
	return host != "" && err == nil && n >= 1 && n <= 65535
}

func (p *parser) oneOf(name, def string, allowed ...string) string {
	v := strings.ToLower(strings.TrimSpace(p.getenv(name)))
	if v == "" {
		return def
	}
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	p.fail(name, fmt.Sprintf("%q is not one of %s", v, strings.Join(allowed, ", ")))
	return def
}
