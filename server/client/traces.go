package client

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Trace is a trace to ingest (Langfuse field names). Zero fields are not sent.
type Trace struct {
	ID          string         `json:"id"`
	Timestamp   time.Time      `json:"timestamp,omitzero"`
	Name        string         `json:"name,omitempty"`
	UserID      string         `json:"userId,omitempty"`
	SessionID   string         `json:"sessionId,omitempty"`
	Release     string         `json:"release,omitempty"`
	Version     string         `json:"version,omitempty"`
	Environment string         `json:"environment,omitempty"`
	Tags        []string       `json:"tags,omitempty"`
	Public      *bool          `json:"public,omitempty"`
	Input       any            `json:"input,omitempty"`
	Output      any            `json:"output,omitempty"`
	Metadata    map[string]any `json:"metadata,omitempty"`
}

// Observation is an observation to ingest. Type is GENERATION, SPAN (default) or EVENT
// (or AGENT, TOOL, …). TraceID defaults to the batch's trace.
type Observation struct {
	ID                  string             `json:"id"`
	TraceID             string             `json:"traceId,omitempty"`
	ParentObservationID string             `json:"parentObservationId,omitempty"`
	Type                string             `json:"type,omitempty"`
	Name                string             `json:"name,omitempty"`
	StartTime           time.Time          `json:"startTime,omitzero"`
	EndTime             time.Time          `json:"endTime,omitzero"`
	CompletionStartTime time.Time          `json:"completionStartTime,omitzero"`
	Model               string             `json:"model,omitempty"`
	ModelParameters     map[string]any     `json:"modelParameters,omitempty"`
	Input               any                `json:"input,omitempty"`
	Output              any                `json:"output,omitempty"`
	Metadata            map[string]any     `json:"metadata,omitempty"`
	PromptTokens        int64              `json:"promptTokens,omitempty"`
	CompletionTokens    int64              `json:"completionTokens,omitempty"`
	TotalTokens         int64              `json:"totalTokens,omitempty"`
	UsageDetails        map[string]float64 `json:"usageDetails,omitempty"`
	CostDetails         map[string]float64 `json:"costDetails,omitempty"`
	Level               string             `json:"level,omitempty"`
	StatusMessage       string             `json:"statusMessage,omitempty"`
	Version             string             `json:"version,omitempty"`
}

// IngestResult counts what the server accepted.
type IngestResult struct {
	Traces       int `json:"traces"`
	Observations int `json:"observations"`
}

// IngestBatch writes a trace (may be nil) and observations in one all-or-nothing
// request (POST /v1/l/batch); it returns after the server committed them.
func (c *Client) IngestBatch(ctx context.Context, trace *Trace, observations []Observation) (*IngestResult, error) {
	if trace == nil && len(observations) == 0 {
		return nil, errors.New("client: IngestBatch needs a trace or observations")
	}
	body := map[string]any{}
	if trace != nil {
		body["trace"] = trace
	}
	if len(observations) > 0 {
		body["observations"] = observations
	}
	var out struct {
		Accepted IngestResult `json:"accepted"`
	}
	if err := c.do(ctx, "POST", "/v1/l/batch", nil, body, &out); err != nil {
		return nil, err
	}
	return &out.Accepted, nil
}

// TraceView holds the fields every trace answer has.
type TraceView struct {
	ID          string          `json:"id"`
	Timestamp   time.Time       `json:"timestamp"`
	Name        *string         `json:"name"`
	UserID      *string         `json:"userId"`
	SessionID   *string         `json:"sessionId"`
	Release     *string         `json:"release"`
	Version     *string         `json:"version"`
	Environment string          `json:"environment"`
	ProjectID   string          `json:"projectId"`
	Tags        []string        `json:"tags"`
	Public      bool            `json:"public"`
	Input       json.RawMessage `json:"input"`
	Output      json.RawMessage `json:"output"`
	Metadata    json.RawMessage `json:"metadata"`
	Latency     float64         `json:"latency"`   // seconds
	TotalCost   float64         `json:"totalCost"` // sum of the observations' total cost
	CreatedAt   time.Time       `json:"createdAt"`
	UpdatedAt   time.Time       `json:"updatedAt"`
}

// TraceSummary is a trace in a list: observations and scores as ids.
type TraceSummary struct {
	TraceView
	ObservationIDs []string `json:"observations"`
	ScoreIDs       []string `json:"scores"`
}

// TraceDetail is one trace with its observations and scores.
type TraceDetail struct {
	TraceView
	Observations []ObservationView `json:"observations"`
	Scores       []ScoreView       `json:"scores"`
}

// ObservationView is a stored observation.
type ObservationView struct {
	ID                  string             `json:"id"`
	TraceID             *string            `json:"traceId"`
	ParentObservationID *string            `json:"parentObservationId"`
	Type                string             `json:"type"`
	Name                *string            `json:"name"`
	StartTime           time.Time          `json:"startTime"`
	EndTime             *time.Time         `json:"endTime"`
	CompletionStartTime *time.Time         `json:"completionStartTime"`
	Model               *string            `json:"model"`
	Level               string             `json:"level"`
	StatusMessage       *string            `json:"statusMessage"`
	Input               json.RawMessage    `json:"input"`
	Output              json.RawMessage    `json:"output"`
	Metadata            json.RawMessage    `json:"metadata"`
	UsageDetails        map[string]float64 `json:"usageDetails"`
	CostDetails         map[string]float64 `json:"costDetails"`
	Latency             *float64           `json:"latency"`          // seconds
	TimeToFirstToken    *float64           `json:"timeToFirstToken"` // seconds
}

// ScoreView is a stored score.
type ScoreView struct {
	ID          string   `json:"id"`
	TraceID     *string  `json:"traceId"`
	Name        string   `json:"name"`
	Value       *float64 `json:"value"`
	StringValue *string  `json:"stringValue"`
	DataType    string   `json:"dataType"`
	Comment     *string  `json:"comment"`
}

// ListMeta is the paging of a list answer.
type ListMeta struct {
	Page       int `json:"page"`
	Limit      int `json:"limit"`
	TotalItems int `json:"totalItems"`
	TotalPages int `json:"totalPages"`
}

// TraceListQuery filters ListTraces; zero fields do not filter.
type TraceListQuery struct {
	Page, Limit                                            int
	UserID, Name, SessionID, Release, Version, Environment string
	Tags                                                   []string // all must match
	From, To                                               time.Time
	OrderBy                                                string // e.g. "timestamp.desc" (default)
}

// TraceList is one page of traces.
type TraceList struct {
	Data []TraceSummary `json:"data"`
	Meta ListMeta       `json:"meta"`
}

// ListTraces lists traces (GET /api/public/traces).
func (c *Client) ListTraces(ctx context.Context, q TraceListQuery) (*TraceList, error) {
	v := url.Values{}
	set := func(k, val string) {
		if val != "" {
			v.Set(k, val)
		}
	}
	if q.Page > 0 {
		v.Set("page", strconv.Itoa(q.Page))
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	set("userId", q.UserID)
	set("name", q.Name)
	set("sessionId", q.SessionID)
	set("release", q.Release)
	set("version", q.Version)
	set("environment", q.Environment)
	set("orderBy", q.OrderBy)
	if len(q.Tags) > 0 {
		v.Set("tags", strings.Join(q.Tags, ","))
	}
	if !q.From.IsZero() {
		v.Set("fromTimestamp", q.From.UTC().Format(time.RFC3339Nano))
	}
	if !q.To.IsZero() {
		v.Set("toTimestamp", q.To.UTC().Format(time.RFC3339Nano))
	}
	var out TraceList
	if err := c.do(ctx, "GET", "/api/public/traces", v, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetTrace returns one trace with its observations and scores; IsNotFound(err) when it does not exist.
func (c *Client) GetTrace(ctx context.Context, id string) (*TraceDetail, error) {
	var out TraceDetail
	if err := c.do(ctx, "GET", "/api/public/traces/"+url.PathEscape(id), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
