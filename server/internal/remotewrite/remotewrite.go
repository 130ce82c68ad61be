// Package remotewrite decodes Prometheus remote-write requests (1.0:
// prometheus.WriteRequest; 2.0: io.prometheus.write.v2.Request) into points
// for the metrics write path, and encodes 1.0 requests for the tests and the
// benchmark. It has no HTTP: the caller reads and decompresses the body.
//
// A request is all-or-nothing, as the native push is: the first invalid
// series or sample is a 400-kind error naming it, and nothing is written.
package remotewrite

import (
	"fmt"
	"mime"
	"strconv"
	"strings"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"

	"github.com/xtrace-dev/xtrace-operator/server/internal/errs"
	"github.com/xtrace-dev/xtrace-operator/server/internal/metrics"
)

// Version is the protocol version of a request.
type Version int

// The protocol versions.
const (
	V1 Version = 1 // prometheus.WriteRequest
	V2 Version = 2 // io.prometheus.write.v2.Request
)

// The proto parameters of Content-Type that name each version.
const (
	protoV1 = "prometheus.WriteRequest"
	protoV2 = "io.prometheus.write.v2.Request"
)

// ContentTypeV1 is what senders of 1.0 requests put in Content-Type.
const ContentTypeV1 = "application/x-protobuf"

// VersionOf reads the protocol version from a request's Content-Type. No
// Content-Type, or no proto parameter, means 1.0 (as the 2.0 specification
// asks of receivers).
func VersionOf(contentType string) (Version, error) {
	if strings.TrimSpace(contentType) == "" {
		return V1, nil
	}
	media, params, err := mime.ParseMediaType(contentType)
	if err != nil || media != "application/x-protobuf" {
		return 0, errs.InvalidField("Content-Type", "%s is not application/x-protobuf", strconv.Quote(clip(contentType)))
	}
	switch params["proto"] {
	case "", protoV1:
		return V1, nil
	case protoV2:
		return V2, nil
	}
	return 0, errs.InvalidField("Content-Type", "proto=%s is not supported (use %s or %s)", strconv.Quote(clip(params["proto"])), protoV1, protoV2)
}

// Decoded is a decoded request.
type Decoded struct {
	Points []metrics.Point
	// Series is the number of time series in the request.
	Series int
}

// Decode validates a decompressed request body of version v. Samples are
// kept as they are, including NaN, ±Inf and Prometheus' staleness markers;
// exemplars and metadata are ignored; native histograms are refused.
func Decode(body []byte, v Version, window metrics.Window) (*Decoded, error) {
	var series []prompb.TimeSeries
	if v == V2 {
		var err error
		if series, err = fromV2(body); err != nil {
			return nil, err
		}
	} else {
		var req prompb.WriteRequest
		if err := req.Unmarshal(body); err != nil {
			return nil, errs.InvalidField("body", "not a remote-write 1.0 message (%s): %v", protoV1, err)
		}
		series = req.Timeseries
	}
	n := 0
	for i := range series {
		n += len(series[i].Samples)
	}
	out := &Decoded{Points: make([]metrics.Point, 0, n), Series: len(series)}
	var lbls []metrics.Label
	for i, ts := range series {
		if len(ts.Histograms) > 0 {
			return nil, errs.InvalidField(fmt.Sprintf("timeseries[%d].histograms", i), "native histograms are not supported; send classic histograms (_bucket, _sum, _count)")
		}
		lbls = lbls[:0]
		for _, l := range ts.Labels {
			lbls = append(lbls, metrics.Label{Name: l.Name, Value: l.Value})
		}
		name, labelsJSON, err := metrics.SeriesIdentity(lbls)
		if err != nil {
			return nil, errs.WithField(err, fmt.Sprintf("timeseries[%d]", i))
		}
		for j, s := range ts.Samples {
			t, err := metrics.SampleTime(s.Timestamp, window)
			if err != nil {
				return nil, errs.WithField(err, fmt.Sprintf("timeseries[%d].samples[%d]", i, j))
			}
			out.Points = append(out.Points, metrics.Point{Name: name, LabelsJSON: labelsJSON, Value: s.Value, Time: t})
		}
	}
	return out, nil
}

// fromV2 decodes a 2.0 request into 1.0 series: labels resolved through the
// symbols table, samples kept, histograms only counted (they are refused).
func fromV2(body []byte) ([]prompb.TimeSeries, error) {
	var req writev2.Request
	if err := req.Unmarshal(body); err != nil {
		return nil, errs.InvalidField("body", "not a remote-write 2.0 message (%s): %v", protoV2, err)
	}
	out := make([]prompb.TimeSeries, len(req.Timeseries))
	for i, ts := range req.Timeseries {
		field := fmt.Sprintf("timeseries[%d].labels_refs", i)
		if len(ts.LabelsRefs)%2 != 0 {
			return nil, errs.InvalidField(field, "odd number of references (name and value come in pairs)")
		}
		for k := 0; k < len(ts.LabelsRefs); k += 2 {
			nameRef, valueRef := ts.LabelsRefs[k], ts.LabelsRefs[k+1]
			if int(nameRef) >= len(req.Symbols) || int(valueRef) >= len(req.Symbols) {
				return nil, errs.InvalidField(field, "reference beyond the %d symbols", len(req.Symbols))
			}
			out[i].Labels = append(out[i].Labels, prompb.Label{Name: req.Symbols[nameRef], Value: req.Symbols[valueRef]})
		}
		out[i].Samples = make([]prompb.Sample, len(ts.Samples))
		for j, s := range ts.Samples {
			out[i].Samples[j] = prompb.Sample{Value: s.Value, Timestamp: s.Timestamp}
		}
		out[i].Histograms = make([]prompb.Histogram, len(ts.Histograms))
	}
	return out, nil
}

// Encode marshals a 1.0 request and compresses it with snappy, as a
// Prometheus server sends it (Content-Type ContentTypeV1, Content-Encoding snappy).
func Encode(req *prompb.WriteRequest) ([]byte, error) {
	raw, err := req.Marshal()
	if err != nil {
		return nil, err
	}
	return snappy.Encode(nil, raw), nil
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
