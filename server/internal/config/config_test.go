package config

import (
	"fmt"
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
	want := PromQLConfig{LookbackDelta: 5 * time.Minute, MaxSamples: 5_000_000, Timeout: 30 * time.Second, MaxConcurrent: 8}
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
