// Package logging builds the structured loggers of the server and the
// operator. Every line carries the fields the monitoring strategy asks of
// each service: timestamp, level, service, message, and, inside a request
// (or a reconcile), request_id and trace_id.
package logging

import (
	"context"
	"io"
	"log/slog"
)

// The services, the value of the "service" field.
const (
	Service         = "xtrace"
	ServiceOperator = "xtrace-operator"
)

// New returns the server's logger: JSON (format "json") or logfmt-like text
// ("text") at the given level ("debug", "info", "warn", "error").
func New(w io.Writer, format, level string) *slog.Logger { return NewFor(Service, w, format, level) }

// NewFor is New for the given service.
func NewFor(service string, w io.Writer, format, level string) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: lvl, ReplaceAttr: rename}
	var h slog.Handler
	if format == "text" {
		h = slog.NewTextHandler(w, opts)
	} else {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(contextHandler{h}).With("service", service)
}

// rename gives the built-in keys the names of the logs contract (and the
// controller runtime's reconcile id the name of a request id).
func rename(groups []string, a slog.Attr) slog.Attr {
	if len(groups) > 0 {
		return a
	}
	switch a.Key {
	case slog.TimeKey:
		a.Key = "timestamp"
	case slog.MessageKey:
		a.Key = "message"
	case "reconcileID":
		a.Key = "request_id"
	}
	return a
}

type ctxKey int

const (
	requestIDKey ctxKey = iota
	traceIDKey
)

// WithRequestID returns ctx carrying the request id that log lines made with it show.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey, id)
}

// RequestID returns the request id carried by ctx, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

// WithTraceID returns ctx carrying the trace id (W3C traceparent or Langfuse) of the request.
func WithTraceID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, traceIDKey, id)
}

// TraceID returns the trace id carried by ctx, or "".
func TraceID(ctx context.Context) string {
	id, _ := ctx.Value(traceIDKey).(string)
	return id
}

// contextHandler adds request_id and trace_id from the context to every record.
type contextHandler struct{ slog.Handler }

func (h contextHandler) Handle(ctx context.Context, r slog.Record) error {
	if ctx != nil {
		if id := RequestID(ctx); id != "" {
			r.AddAttrs(slog.String("request_id", id))
		}
		if id := TraceID(ctx); id != "" {
			r.AddAttrs(slog.String("trace_id", id))
		}
	}
	return h.Handler.Handle(ctx, r)
}

func (h contextHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return contextHandler{h.Handler.WithAttrs(attrs)}
}

func (h contextHandler) WithGroup(name string) slog.Handler {
	return contextHandler{h.Handler.WithGroup(name)}
}
