package promapi_test

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"strings"
	"testing"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"

	"github.com/xtrace-dev/xtrace-operator/internal/pgtest"
	"github.com/xtrace-dev/xtrace-operator/server/internal/remotewrite"
	"github.com/xtrace-dev/xtrace-operator/server/internal/servertest"
)

// Bad remote-write requests get a clean 4xx naming the problem, and nothing
// of them is written.
func TestRemoteWriteBadInput(t *testing.T) {
	t.Parallel()
	s := servertest.Start(t, servertest.Options{Env: map[string]string{
		"XTRACE_MAX_REQUEST_BODY_BYTES": "65536", "XTRACE_MAX_SERIES_PER_REQUEST": "3"}})
	t0 := base()
	good := servertest.Series(series("ok_metric", "k", "v"), at(t0, 1))
	encode := func(ts ...prompb.TimeSeries) []byte {
		b, err := remotewrite.Encode(&prompb.WriteRequest{Timeseries: ts})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	manySeries := make([]prompb.TimeSeries, 5)
	for i := range manySeries {
		manySeries[i] = servertest.Series(series("fanout", "i", fmt.Sprint(i)), at(t0, 1))
	}
	huge := servertest.Series(series("huge", "blob", strings.Repeat("x", 100_000)), at(t0, 1)) // compresses to almost nothing
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write([]byte("not a protobuf"))
	_ = zw.Close()
	histogram := good
	histogram.Histograms = []prompb.Histogram{{Timestamp: t0.UnixMilli()}}

	cases := []struct {
		name     string
		body     []byte
		headers  []string
		status   int
		contains string
	}{
		{"garbage snappy", []byte("\x20not snappy at all"), nil, 400, "corrupt snappy data"},
		{"snappy claiming a huge body", []byte("\xff\xff\xff\xff\x0fgarbage"), nil, 413, "larger than 65536 bytes"},
		{"wrong protobuf", snappy.Encode(nil, []byte("\x0a\x05hello\x12\x02{}")), nil, 400, "remote-write 1.0"},
		{"gzip, not protobuf", gz.Bytes(), []string{"Content-Encoding", "gzip"}, 400, "remote-write 1.0"},
		{"no __name__", encode(good, servertest.Series([]string{"job", "x"}, at(t0, 1))), nil, 400, "timeseries[1].labels: no __name__"},
		{"duplicate label names", encode(servertest.Series(series("m", "a", "1", "a", "2"), at(t0, 1))), nil, 400, `label "a" appears twice`},
		{"duplicate __name__", encode(servertest.Series(series("m", "__name__", "n"), at(t0, 1))), nil, 400, "__name__ appears twice"},
		{"invalid label name", encode(servertest.Series(series("m", "bad-name", "1"), at(t0, 1))), nil, 400, `key "bad-name"`},
		{"invalid metric name", encode(servertest.Series(series("1abc"), at(t0, 1))), nil, 400, `"1abc" does not match`},
		{"timestamp in seconds", encode(servertest.Series(series("m"), prompb.Sample{Timestamp: t0.Unix(), Value: 1})), nil, 400, "samples[0].timestamp"},
		{"native histogram", encode(good, histogram), nil, 400, "native histograms are not supported"},
		{"oversize after decompression", encode(huge), nil, 413, "larger than 65536 bytes"},
		{"too many new series", encode(manySeries...), nil, 400, "more than 3 new series"},
		{"unknown proto", encode(good), []string{"Content-Type", "application/x-protobuf;proto=io.example.Other"}, 400, "not supported"},
		{"not protobuf", encode(good), []string{"Content-Type", "application/json"}, 400, "Content-Type"},
	}
	for _, tc := range cases {
		headers := append([]string{"Content-Type", remotewrite.ContentTypeV1, "Content-Encoding", "snappy"}, tc.headers...)
		if len(tc.body) > 65536 {
			t.Fatalf("%s: the body itself is over the limit; the case is about the inflated size", tc.name)
		}
		resp := s.Do(t, "POST", "/api/v1/write", tc.body, headers...)
		var answer struct{ Message string }
		resp.JSON(t, &answer)
		if resp.Status != tc.status || !strings.Contains(answer.Message, tc.contains) {
			t.Errorf("%s: %d %s, want %d containing %q", tc.name, resp.Status, resp.Body, tc.status, tc.contains)
		}
	}
	db := pgtest.Connect(t, s.DatabaseURL)
	if n := db.Int(`SELECT count(*) FROM metric_points`) + db.Int(`SELECT count(*) FROM metric_series`); n != 0 {
		t.Fatalf("bad requests wrote %d rows", n)
	}

	// Within the limits the same kind of request goes through: 3 new series, then 2 more.
	mustWrite(t, s, manySeries[:3]...)
	mustWrite(t, s, manySeries...)
	if n := db.Int(`SELECT count(*) FROM metric_series`); n != 5 {
		t.Fatalf("%d series, want 5", n)
	}
}
