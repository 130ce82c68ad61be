package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/go-logr/logr"
)

// TestLogLinesCarryTheContractFields: timestamp, level, service, message, and
// within a request request_id and trace_id.
func TestLogLinesCarryTheContractFields(t *testing.T) {
	var buf bytes.Buffer
	log := New(&buf, "json", "info")
	ctx := WithTraceID(WithRequestID(context.Background(), "req-1"), "0af7651916cd43dd8448eb211c80319c")
	log.InfoContext(ctx, "request", "status", 200)
	log.Info("no request")
	log.Debug("below the level")
	lines := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))
	if len(lines) != 2 {
		t.Fatalf("%d lines: %s", len(lines), buf.String())
	}
	var first, second map[string]any
	if err := json.Unmarshal(lines[0], &first); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(lines[1], &second); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"timestamp", "level", "service", "message", "request_id", "trace_id", "status"} {
		if _, ok := first[key]; !ok {
			t.Errorf("line lacks %q: %s", key, lines[0])
		}
	}
	if first["service"] != "xtrace" || first["message"] != "request" || first["request_id"] != "req-1" || first["level"] != "INFO" {
		t.Errorf("fields: %s", lines[0])
	}
	if _, ok := second["request_id"]; ok {
		t.Errorf("a line outside a request has a request_id: %s", lines[1])
	}
	for _, old := range []string{"time", "msg"} {
		if _, ok := first[old]; ok {
			t.Errorf("line still has slog's %q key: %s", old, lines[0])
		}
	}
}

// TestOperatorLinesCarryTheContractFields: the manager logs through logr
// (controller-runtime); its lines have the same fields, the reconcile id as
// request_id.
func TestOperatorLinesCarryTheContractFields(t *testing.T) {
	var buf bytes.Buffer
	log := logr.FromSlogHandler(NewFor(ServiceOperator, &buf, "json", "info").Handler())
	log.WithValues("controller", "xtrace", "reconcileID", "r-7").Info("Reconciling")
	log.V(1).Info("debug detail, below the level")
	var line map[string]any
	if err := json.Unmarshal(bytes.TrimSpace(buf.Bytes()), &line); err != nil {
		t.Fatalf("%v: %s", err, buf.String())
	}
	if line["service"] != "xtrace-operator" || line["message"] != "Reconciling" || line["request_id"] != "r-7" || line["level"] != "INFO" || line["timestamp"] == nil {
		t.Fatalf("fields: %s", buf.String())
	}
}
