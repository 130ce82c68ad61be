package config_test

import (
	"net"
	"strconv"
	"testing"

	"github.com/xtrace-dev/xtrace-operator/api/v1alpha1"
	"github.com/xtrace-dev/xtrace-operator/server/internal/config"
)

// The XTrace CRD's defaults (api/v1alpha1, pinned to the CRD markers by a test
// there) and the server's own defaults must agree, so an XTrace that sets
// nothing runs the server exactly as a bare `xtrace serve` would. This test
// lives here because only packages under server/internal may import config.
func TestCRDDefaultsMatchTheServer(t *testing.T) {
	_, port, err := net.SplitHostPort(config.DefaultBindAddr)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name        string
		crd, server float64
	}{
		{"rateLimit.qps / RATE_LIMIT_QPS", v1alpha1.DefaultRateLimitQPS, config.DefaultRateLimitQPS},
		{"rateLimit.burst / RATE_LIMIT_BURST", float64(v1alpha1.DefaultRateLimitBurst), config.DefaultRateLimitBurst},
		{"retention.metricsDays / METRICS_RETENTION_DAYS", float64(v1alpha1.DefaultMetricsRetentionDays), config.DefaultMetricsRetention},
		{"retention.tracesDays / TRACES_RETENTION_DAYS", float64(v1alpha1.DefaultTracesRetentionDays), config.DefaultTracesRetention},
		{"database.maxConnections / XTRACE_DB_MAX_CONNS", float64(v1alpha1.DefaultDatabaseMaxConnections), config.DefaultDBMaxConns},
		{"service.port / port of BIND_ADDR", float64(v1alpha1.DefaultServicePort), mustAtoi(t, port)},
	} {
		if c.crd != c.server {
			t.Errorf("%s: the CRD defaults to %v, the server to %v", c.name, c.crd, c.server)
		}
	}
	if v1alpha1.DefaultProjectID != config.DefaultProjectID {
		t.Errorf("defaultProjectId / DEFAULT_PROJECT_ID: the CRD defaults to %q, the server to %q", v1alpha1.DefaultProjectID, config.DefaultProjectID)
	}
}

func mustAtoi(t *testing.T, s string) float64 {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return float64(n)
}
