package traces

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/xtrace-dev/xtrace-operator/server/internal/errs"
)

// MaxIDLength bounds ids (Langfuse: 1–800 characters).
const MaxIDLength = 800

// MaxBatchEvents bounds the events (or observations, or spans) of one
// request, so that one request is always small enough to apply in one
// transaction; larger batches get 413 and must be split.
const MaxBatchEvents = 10000

// EventResult is the outcome of one ingestion event.
type EventResult struct {
	ID      string `json:"id"`
	Status  int    `json:"status"`
	Message string `json:"message,omitempty"`
	Error   string `json:"error,omitempty"`
}

// observation event types and the observation type they create.
var observationTypes = map[string]string{
	"span-create": "SPAN", "span-update": "SPAN",
	"generation-create": "GENERATION", "generation-update": "GENERATION",
	"event-create":       "EVENT",
	"observation-create": "", "observation-update": "", // type from the body
	"agent-create": "AGENT", "tool-create": "TOOL", "chain-create": "CHAIN", "retriever-create": "RETRIEVER",
	"evaluator-create": "EVALUATOR", "embedding-create": "EMBEDDING", "guardrail-create": "GUARDRAIL",
}

var validObservationTypes = map[string]bool{
	"SPAN": true, "GENERATION": true, "EVENT": true, "AGENT": true, "TOOL": true, "CHAIN": true,
	"RETRIEVER": true, "EVALUATOR": true, "EMBEDDING": true, "GUARDRAIL": true,
}

type envelope struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	Timestamp string          `json:"timestamp"`
	Body      json.RawMessage `json:"body"`
}

// ParseIngestion turns a Langfuse ingestion body into upserts. Each event
// stands alone: invalid ones get an error result, valid ones a 201. Events
// repeated in the batch (same envelope id) are applied once.
func ParseIngestion(body []byte, now time.Time) ([]Upsert, []EventResult, []EventResult, error) {
	var req struct {
		Batch []json.RawMessage `json:"batch"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, nil, nil, errs.InvalidField("body", "must be a JSON object with a batch array")
	}
	if req.Batch == nil {
		return nil, nil, nil, errs.InvalidField("batch", "required")
	}
	if len(req.Batch) > MaxBatchEvents {
		return nil, nil, nil, errs.TooLargef("batch", "%d events in one request, at most %d; split it into smaller batches", len(req.Batch), MaxBatchEvents)
	}
	var ups []Upsert
	successes, failures := []EventResult{}, []EventResult{}
	seen := map[string]bool{}
	for i, raw := range req.Batch {
		var env envelope
		if err := json.Unmarshal(raw, &env); err != nil {
			failures = append(failures, failure(fmt.Sprintf("batch[%d]", i), fmt.Sprintf("batch[%d]: not an event object", i)))
			continue
		}
		id := env.ID
		if id == "" {
			id = fmt.Sprintf("batch[%d]", i)
		}
		if seen[env.ID] && env.ID != "" {
			successes = append(successes, EventResult{ID: id, Status: 201})
			continue
		}
		u, err := parseEvent(env, now)
		if err != nil {
			failures = append(failures, failure(id, fmt.Sprintf("batch[%d] (%s): %v", i, env.Type, err)))
			continue
		}
		seen[env.ID] = true
		ups = append(ups, u...)
		successes = append(successes, EventResult{ID: id, Status: 201})
	}
	return ups, successes, failures, nil
}

func failure(id, msg string) EventResult {
	return EventResult{ID: id, Status: 400, Message: msg, Error: "InvalidRequestError"}
}

func parseEvent(env envelope, now time.Time) ([]Upsert, error) {
	when := now
	if env.Timestamp != "" {
		t, err := time.Parse(time.RFC3339Nano, env.Timestamp)
		if err != nil {
			return nil, errs.InvalidField("timestamp", "%q is not ISO 8601 with an offset", trunc(env.Timestamp))
		}
		when = t
	}
	if env.Type == "sdk-log" {
		return nil, nil
	}
	fields, err := bodyFields(env.Body)
	if err != nil {
		return nil, err
	}
	update := strings.HasSuffix(env.Type, "-update")
	switch {
	case env.Type == "trace-create":
		return traceUpserts(fields, NewStamp(when, false), "")
	case env.Type == "score-create":
		return scoreUpserts(fields, NewStamp(when, false))
	default:
		obsType, ok := observationTypes[env.Type]
		if !ok {
			return nil, errs.InvalidField("type", "unknown event type %q", trunc(env.Type))
		}
		return observationUpserts(fields, NewStamp(when, update), obsType, "")
	}
}
