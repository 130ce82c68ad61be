// Package otlpmetrics turns OTLP metrics (protobuf or JSON) into points for
// the metrics write path, with Prometheus' own OTLP translator
// (storage/remote/otlptranslator/prometheusremotewrite) and the settings of
// Prometheus' OTLP receiver: metric names with unit and type suffixes
// (UnderscoreEscapingWithSuffixes), service.name → job, service.instance.id →
// instance, the other resource attributes on target_info, monotonic sums as
// counters, histograms as _bucket{le}, _sum and _count, summaries as
// quantiles, _sum and _count. It has no HTTP.
package otlpmetrics

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/storage/remote/otlptranslator/prometheusremotewrite"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"

	"github.com/xtrace-dev/xtrace-operator/server/internal/errs"
	"github.com/xtrace-dev/xtrace-operator/server/internal/metrics"
)

// MaxSamplesPerRequest bounds the samples one request may expand into (a
// histogram data point becomes one sample per bucket, and target_info is
// repeated across the request's time span), so a small body cannot make the
// server build an unbounded batch.
const MaxSamplesPerRequest = 1_000_000

// Decode parses an ExportMetricsServiceRequest in protobuf or JSON.
func Decode(body []byte, protobuf bool) (pmetric.Metrics, error) {
	req := pmetricotlp.NewExportRequest()
	var err error
	if protobuf {
		err = req.UnmarshalProto(body)
	} else {
		err = req.UnmarshalJSON(body)
	}
	if err != nil {
		return pmetric.Metrics{}, errs.InvalidField("body", "not an OTLP ExportMetricsServiceRequest: %v", err)
	}
	return req.Metrics(), nil
}

// Result is a translated request: the valid points, and how many samples
// were rejected with the first reason.
type Result struct {
	Points   []metrics.Point
	Rejected int
	Problem  string
}

// Translate converts md with Prometheus' translator. Samples that the store
// cannot take (invalid names or labels after translation, timestamps out of
// range, exponential histograms, which would become native histograms) are
// counted in Rejected; the rest are returned. lookbackDelta spaces the
// target_info samples as Prometheus does.
func Translate(ctx context.Context, md pmetric.Metrics, window metrics.Window, lookbackDelta time.Duration) (*Result, error) {
	app := &appender{window: window}
	// Out-of-range data points go first: the translator repeats target_info
	// over the span of a resource's timestamps, which one stray timestamp
	// (a unit mistake, 1970) would stretch over decades.
	dropOutOfRange(md, window, app)
	otlp := config.DefaultOTLPConfig
	conv := prometheusremotewrite.NewPrometheusConverter(app)
	_, err := conv.FromMetrics(ctx, md, prometheusremotewrite.Settings{
		AddMetricSuffixes:                    otlp.TranslationStrategy.ShouldAddSuffixes(),
		AllowUTF8:                            !otlp.TranslationStrategy.ShouldEscape(),
		PromoteResourceAttributes:            prometheusremotewrite.NewPromoteResourceAttributes(otlp),
		KeepIdentifyingResourceAttributes:    otlp.KeepIdentifyingResourceAttributes,
		PromoteScopeMetadata:                 otlp.PromoteScopeMetadata,
		LookbackDelta:                        lookbackDelta,
		LabelNameUnderscoreSanitization:      otlp.LabelNameUnderscoreSanitization,
		LabelNamePreserveMultipleUnderscores: otlp.LabelNamePreserveMultipleUnderscores,
	})
	if ctxErr := ctx.Err(); ctxErr != nil {
		return nil, ctxErr
	}
	if app.overflow {
		return nil, errs.TooLargef("body", "the metrics expand to more than %d samples; send smaller exports", MaxSamplesPerRequest)
	}
	res := &Result{Points: app.points, Rejected: app.rejected, Problem: app.problem}
	if err != nil {
		// Metrics the translator refused as a whole (e.g. delta temporality).
		res.Rejected = max(res.Rejected, 1)
		if res.Problem == "" {
			res.Problem = firstLine(err)
		}
	}
	return res, nil
}

// dropOutOfRange removes the data points whose timestamps the store does
// not accept, counting them as rejected.
func dropOutOfRange(md pmetric.Metrics, window metrics.Window, app *appender) {
	outside := func(name string, ts pcommon.Timestamp) bool {
		_, err := metrics.SampleTime(int64(ts)/1e6, window)
		if err != nil {
			app.reject(fmt.Sprintf("%s: %s", name, errs.WithField(err, "dataPoint").Error()))
		}
		return err != nil
	}
	rms := md.ResourceMetrics()
	for i := range rms.Len() {
		sms := rms.At(i).ScopeMetrics()
		for j := range sms.Len() {
			ms := sms.At(j).Metrics()
			for k := range ms.Len() {
				m := ms.At(k)
				switch m.Type() {
				case pmetric.MetricTypeGauge:
					m.Gauge().DataPoints().RemoveIf(func(dp pmetric.NumberDataPoint) bool { return outside(m.Name(), dp.Timestamp()) })
				case pmetric.MetricTypeSum:
					m.Sum().DataPoints().RemoveIf(func(dp pmetric.NumberDataPoint) bool { return outside(m.Name(), dp.Timestamp()) })
				case pmetric.MetricTypeHistogram:
					m.Histogram().DataPoints().RemoveIf(func(dp pmetric.HistogramDataPoint) bool { return outside(m.Name(), dp.Timestamp()) })
				case pmetric.MetricTypeExponentialHistogram:
					m.ExponentialHistogram().DataPoints().RemoveIf(func(dp pmetric.ExponentialHistogramDataPoint) bool { return outside(m.Name(), dp.Timestamp()) })
				case pmetric.MetricTypeSummary:
					m.Summary().DataPoints().RemoveIf(func(dp pmetric.SummaryDataPoint) bool { return outside(m.Name(), dp.Timestamp()) })
				}
			}
		}
	}
}

func firstLine(err error) string {
	msg, _, _ := strings.Cut(err.Error(), "\n")
	return msg
}

// appender receives the translator's samples and keeps them as points.
type appender struct {
	window   metrics.Window
	points   []metrics.Point
	rejected int
	problem  string
	overflow bool
	// last caches the identity of the previous series (the translator
	// appends the samples of one series one after another).
	last struct {
		labels           labels.Labels
		name, labelsJSON string
		err              error
	}
}

var errTooManySamples = errors.New("too many samples in one request")

func (a *appender) Append(_ storage.SeriesRef, ls labels.Labels, _, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, _ storage.AOptions) (storage.SeriesRef, error) {
	if len(a.points)+a.rejected >= MaxSamplesPerRequest {
		a.overflow = true
		return 0, errTooManySamples
	}
	if h != nil || fh != nil {
		a.reject(fmt.Sprintf("%s: exponential histograms are not supported (they would be native histograms); use explicit-bucket histograms", ls.Get(labels.MetricName)))
		return 1, nil
	}
	if !labels.Equal(ls, a.last.labels) {
		a.last.labels = ls.Copy()
		var lbls []metrics.Label
		ls.Range(func(l labels.Label) { lbls = append(lbls, metrics.Label{Name: l.Name, Value: l.Value}) })
		a.last.name, a.last.labelsJSON, a.last.err = metrics.SeriesIdentity(lbls)
	}
	if a.last.err != nil {
		a.reject(fmt.Sprintf("%s: %s", ls.Get(labels.MetricName), errs.WithField(a.last.err, "series").Error()))
		return 1, nil
	}
	ts, err := metrics.SampleTime(t, a.window)
	if err != nil {
		a.reject(fmt.Sprintf("%s: %s", a.last.name, err.Error()))
		return 1, nil
	}
	a.points = append(a.points, metrics.Point{Name: a.last.name, LabelsJSON: a.last.labelsJSON, Value: v, Time: ts})
	return 1, nil
}

func (a *appender) reject(problem string) {
	a.rejected++
	if a.problem == "" {
		a.problem = problem
	}
}

// Commit and Rollback: the points are committed by the caller through the
// ingest queue, after the whole request has been translated.
func (*appender) Commit() error   { return nil }
func (*appender) Rollback() error { return nil }
