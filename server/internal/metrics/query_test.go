package metrics

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/xtrace-dev/xtrace-operator/server/internal/chunks"
	"github.com/xtrace-dev/xtrace-operator/server/internal/errs"
)

// manySeries is a Source whose metric has more series with points than a
// query may scan; it records the limit it was asked for and fails if a
// query goes on to read points.
type manySeries struct{ limit int }

func (m *manySeries) FindSeries(_ context.Context, _ string, sel Selector) ([]SeriesRef, error) {
	m.limit = sel.Limit
	out := make([]SeriesRef, sel.Limit) // the store stops at the limit
	for i := range out {
		out[i] = SeriesRef{ID: int64(i + 1), Labels: map[string]string{"node_id": "n"}}
	}
	return out, nil
}

func (m *manySeries) ReadSeries(context.Context, string, ReadRequest) ([]SeriesData, error) {
	return nil, errors.New("points read for a query that must be refused")
}

func (m *manySeries) ReadWindows(context.Context, string, []WindowKey) (map[WindowKey][]byte, error) {
	return nil, errors.New("chunks read for a query that must be refused")
}

func (m *manySeries) LatestPoints(context.Context, string, []int64) (map[int64]chunks.Sample, error) {
	return nil, errors.New("latest values read for a query that must be refused")
}

// TestQueryOverTooManySeriesIsRefused: the series lookup is bounded (one
// more than MaxSeriesScanned is asked for), and a metric with more series
// in the window is a 400 naming labels, before any point is read.
func TestQueryOverTooManySeriesIsRefused(t *testing.T) {
	src := &manySeries{}
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	q := &Query{Name: "gpu_utilization", From: now.Add(-time.Hour), To: now, Step: time.Minute, Agg: AggAvg}
	_, err := Run(context.Background(), src, "default", q)
	if src.limit != MaxSeriesScanned+1 {
		t.Errorf("series lookup limit %d, want %d", src.limit, MaxSeriesScanned+1)
	}
	var e *errs.Error
	if !errors.As(err, &e) || e.Kind != errs.Invalid || e.Field != "labels" || !strings.Contains(e.Msg, "more than 10000 series") {
		t.Fatalf("error %v, want a 400 on labels saying more than 10000 series", err)
	}
}
