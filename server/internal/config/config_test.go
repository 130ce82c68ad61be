package config

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func env(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

func TestDefaults(t *testing.T) {
	c, err := Load(env(map[string]string{"DATABASE_URL": "postgres://x@h/db", "API_BEARER_TOKEN": "t1"}), ModeServe)
	if err != nil {
		t.Fatal(err)
	}
	if c.BindAddr != "127.0.0.1:8742" || c.DefaultProjectID != "default" || c.RateLimitQPS != 20 ||
		c.RateLimitBurst != 40 || c.MetricsRetentionDays != 30 || c.TracesRetentionDays != 90 ||
		c.RetentionInterval != time.Hour || c.MaxRequestBodyBytes != 20971520 || c.DBMaxConns != 20 ||
		c.LogFormat != "json" || c.LogLevel != "info" {
		t.Fatalf("unexpected defaults: %+v", c)
	}
}

func TestValues(t *testing.T) {
	c, err := Load(env(map[string]string{
		"PGHOST": "db", "API_BEARER_TOKEN": " a, b ,,c", "LANGFUSE_PUBLIC_KEY": "pk", "LANGFUSE_SECRET_KEY": "sk",
		"RATE_LIMIT_QPS": "2.5", "XTRACE_RETENTION_INTERVAL": "0", "XTRACE_LOG_FORMAT": "TEXT",
	}), ModeServe)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.BearerTokens, "|") != "a|b|c" {
		t.Errorf("tokens = %q", c.BearerTokens)
	}
	if c.PublicKey != "pk" || c.SecretKey != "sk" {
		t.Errorf("legacy key names not honoured: %q %q", c.PublicKey, c.SecretKey)
	}
	if c.RateLimitQPS != 2.5 || c.RetentionInterval != 0 || c.LogFormat != "text" {
		t.Errorf("got %+v", c)
	}
}

func TestInvalidValuesNameTheVariable(t *testing.T) {
	base := map[string]string{"DATABASE_URL": "postgres://h/db", "API_BEARER_TOKEN": "t"}
	cases := []struct{ name, value string }{
		{"RATE_LIMIT_QPS", "fast"},
		{"RATE_LIMIT_QPS", "0"},
		{"RATE_LIMIT_BURST", "0"},
		{"METRICS_RETENTION_DAYS", "-1"},
		{"TRACES_RETENTION_DAYS", "ten"},
		{"XTRACE_RETENTION_INTERVAL", "soon"},
		{"XTRACE_RETENTION_INTERVAL", "-5m"},
		{"XTRACE_MAX_REQUEST_BODY_BYTES", "1e9"},
		{"XTRACE_DB_MAX_CONNS", "1"},
		{"XTRACE_LOG_LEVEL", "loud"},
		{"XTRACE_PUBLIC_KEY", "only-public"},
		{"API_BEARER_TOKEN", " , "},
		{"XTRACE_MAX_SERIES_PER_REQUEST", "0"},
		{"XTRACE_PROMQL_LOOKBACK_DELTA", "0"},
		{"XTRACE_PROMQL_LOOKBACK_DELTA", "300"},
		{"XTRACE_PROMQL_MAX_SAMPLES", "many"},
		{"XTRACE_PROMQL_TIMEOUT", "-1s"},
		{"XTRACE_PROMQL_MAX_CONCURRENT_QUERIES", "0"},
	}
	for _, tc := range cases {
		kv := map[string]string{}
		for k, v := range base {
			kv[k] = v
		}
		kv[tc.name] = tc.value
		_, err := Load(env(kv), ModeServe)
		if err == nil {
			t.Errorf("%s=%q accepted", tc.name, tc.value)
			continue
		}
		want := tc.name
		if tc.name == "XTRACE_PUBLIC_KEY" {
			want = "XTRACE_SECRET_KEY"
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%s=%q: error %q does not name the variable", tc.name, tc.value, err)
		}
	}
}

func TestPrometheusSettings(t *testing.T) {
	base := map[string]string{"DATABASE_URL": "postgres://h/db", "API_BEARER_TOKEN": "t"}
	c, err := Load(env(base), ModeServe)
	if err != nil {
		t.Fatal(err)
	}
	want := PromQLConfig{LookbackDelta: 5 * time.Minute, MaxSamples: 20_000_000, Timeout: 30 * time.Second, MaxConcurrent: 8}
	if c.PromQL != want || c.MaxSeriesPerRequest != 10000 {
		t.Errorf("defaults: got %+v and %d series per request", c.PromQL, c.MaxSeriesPerRequest)
	}
	base["XTRACE_PROMQL_LOOKBACK_DELTA"] = "1m"
	base["XTRACE_PROMQL_MAX_SAMPLES"] = "20000"
	base["XTRACE_PROMQL_TIMEOUT"] = "2m"
	base["XTRACE_PROMQL_MAX_CONCURRENT_QUERIES"] = "2"
	base["XTRACE_MAX_SERIES_PER_REQUEST"] = "50"
	if c, err = Load(env(base), ModeServe); err != nil {
		t.Fatal(err)
	}
	want = PromQLConfig{LookbackDelta: time.Minute, MaxSamples: 20000, Timeout: 2 * time.Minute, MaxConcurrent: 2}
	if c.PromQL != want || c.MaxSeriesPerRequest != 50 {
		t.Errorf("set: got %+v and %d series per request", c.PromQL, c.MaxSeriesPerRequest)
	}
}

func TestDatabaseRequired(t *testing.T) {
	_, err := Load(env(map[string]string{"API_BEARER_TOKEN": "t"}), ModeServe)
	if err == nil || !strings.Contains(err.Error(), "DATABASE_URL") {
		t.Fatalf("want DATABASE_URL error, got %v", err)
	}
}

func TestDatabaseOnlyModeNeedsNoToken(t *testing.T) {
	if _, err := Load(env(map[string]string{"DATABASE_URL": "postgres://h/db"}), ModeDatabaseOnly); err != nil {
		t.Fatal(err)
	}
}

func TestLogValueHasNoSecrets(t *testing.T) {
	c, err := Load(env(map[string]string{
		"DATABASE_URL": "postgres://user:hunter2@db:5432/x?password=hunter3", "API_BEARER_TOKEN": "tok-secret",
		"XTRACE_PUBLIC_KEY": "pk-lf", "XTRACE_SECRET_KEY": "sk-secret",
	}), ModeServe)
	if err != nil {
		t.Fatal(err)
	}
	dump := fmt.Sprint(c.LogValue()...)
	for _, secret := range []string{"hunter2", "hunter3", "tok-secret", "sk-secret"} {
		if strings.Contains(dump, secret) {
			t.Errorf("log value leaks %q: %s", secret, dump)
		}
	}
	if !strings.Contains(dump, "postgres://db:5432/x") {
		t.Errorf("redacted URL missing from %s", dump)
	}
}

func TestReadReplicaSettings(t *testing.T) {
	base := func(kv map[string]string) map[string]string {
		kv["DATABASE_URL"], kv["API_BEARER_TOKEN"] = "postgres://h/db", "t"
		return kv
	}
	cases := []struct {
		env   map[string]string
		urls  []string
		hosts []string
		lag   time.Duration
	}{
		{env: map[string]string{}, lag: 2 * time.Second},
		{env: map[string]string{"DATABASE_READ_URL": "postgres://u:p@r1:5432/db", "XTRACE_READ_MAX_LAG": "500ms"},
			urls: []string{"postgres://u:p@r1:5432/db"}, lag: 500 * time.Millisecond},
		// Several URLs; the first uses libpq's multi-host form, whose comma is not a separator.
		{env: map[string]string{"DATABASE_READ_URL": "postgres://u:p@r1,r2/db?sslmode=require, postgresql://u:p@r3/db"},
			urls: []string{"postgres://u:p@r1,r2/db?sslmode=require", "postgresql://u:p@r3/db"}, lag: 2 * time.Second},
		{env: map[string]string{"DATABASE_READ_URL": "host=r1 dbname=db user=u"}, urls: []string{"host=r1 dbname=db user=u"}, lag: 2 * time.Second},
		{env: map[string]string{"DATABASE_READ_HOST": "pg-ro, pg-ro-2:6432,[fd00::1]:5433,10.0.0.7"},
			hosts: []string{"pg-ro", "pg-ro-2:6432", "[fd00::1]:5433", "10.0.0.7"}, lag: 2 * time.Second},
	}
	for _, tc := range cases {
		c, err := Load(env(base(tc.env)), ModeServe)
		if err != nil {
			t.Errorf("%v: %v", tc.env, err)
			continue
		}
		if !slices.Equal(c.DatabaseReadURLs, tc.urls) || !slices.Equal(c.DatabaseReadHosts, tc.hosts) || c.ReadMaxLag != tc.lag {
			t.Errorf("%v: urls %q hosts %q lag %s; want %q %q %s", tc.env, c.DatabaseReadURLs, c.DatabaseReadHosts, c.ReadMaxLag, tc.urls, tc.hosts, tc.lag)
		}
	}
}

func TestInvalidReadReplicaSettings(t *testing.T) {
	cases := []struct{ name, value, variable string }{
		{"XTRACE_READ_MAX_LAG", "0", "XTRACE_READ_MAX_LAG"},
		{"XTRACE_READ_MAX_LAG", "-1s", "XTRACE_READ_MAX_LAG"},
		{"XTRACE_READ_MAX_LAG", "2", "XTRACE_READ_MAX_LAG"},
		{"DATABASE_READ_URL", "postgres://u:hunter2@r1/db,mysql://u:hunter2@r2/db", "DATABASE_READ_URL"},
		{"DATABASE_READ_URL", "r1.example", "DATABASE_READ_URL"},
		{"DATABASE_READ_URL", "postgres://u:hunter2@/db", "DATABASE_READ_URL"},
		{"DATABASE_READ_HOST", "pg-ro:0", "DATABASE_READ_HOST"},
		{"DATABASE_READ_HOST", "pg-ro:http", "DATABASE_READ_HOST"},
		{"DATABASE_READ_HOST", "pg-ro,,pg-ro-2", "DATABASE_READ_HOST"},
		{"DATABASE_READ_HOST", "postgres://pg-ro", "DATABASE_READ_HOST"},
		{"DATABASE_READ_HOST", "user@pg-ro", "DATABASE_READ_HOST"},
	}
	for _, tc := range cases {
		kv := map[string]string{"DATABASE_URL": "postgres://h/db", "API_BEARER_TOKEN": "t", tc.name: tc.value}
		_, err := Load(env(kv), ModeServe)
		if err == nil {
			t.Errorf("%s=%q accepted", tc.name, tc.value)
			continue
		}
		if !strings.Contains(err.Error(), tc.variable) || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s=%q: error %q must name %s and hold no password", tc.name, tc.value, err, tc.variable)
		}
	}
	_, err := Load(env(map[string]string{"DATABASE_URL": "postgres://h/db", "API_BEARER_TOKEN": "t",
		"DATABASE_READ_URL": "postgres://r/db", "DATABASE_READ_HOST": "r"}), ModeServe)
	if err == nil || !strings.Contains(err.Error(), "at most one") {
		t.Errorf("both read settings: %v; want a refusal", err)
	}
}

func TestReadReplicasLoggedWithoutPasswords(t *testing.T) {
	c, err := Load(env(map[string]string{"DATABASE_URL": "postgres://h/db", "API_BEARER_TOKEN": "t",
		"DATABASE_READ_URL": "postgres://u:hunter2@r1:5432/db,postgres://u:hunter2@r2:5432/db"}), ModeServe)
	if err != nil {
		t.Fatal(err)
	}
	dump := fmt.Sprint(c.LogValue()...)
	if strings.Contains(dump, "hunter2") || !strings.Contains(dump, "postgres://r1:5432/db") || !strings.Contains(dump, "postgres://r2:5432/db") {
		t.Errorf("log value %s: want both replicas named, no password", dump)
	}
}
