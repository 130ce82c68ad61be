package httpapi

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/xtrace-dev/xtrace-operator/server/internal/metrics"
)

// The metrics query's hand-written encoder writes the bytes encoding/json
// wrote before it: hostile label text, special values, empty and nil parts.
func TestQueryResponseEncodingMatchesEncodingJSON(t *testing.T) {
	at := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	latest := at.Add(17*time.Second + 123456*time.Microsecond)
	cases := map[string]queryResponse{
		"empty": {Data: []metrics.Series{}},
		"values and hostile labels": {
			Data: []metrics.Series{
				{Labels: map[string]string{"node_id": "node-1", "model": `<b>"q"&\x</b>`, "ctl": "a\x00\x01\t\n\r\b\f", "bad": "\xff\xfe", "sep": "\u2028\u2029", "ü": "日本"},
					Values: []metrics.Sample{{Start: at.UnixMicro(), Value: 1.5}, {Start: at.Add(time.Minute).UnixMicro(), Value: math.NaN()},
						{Start: at.Add(2 * time.Minute).UnixMicro(), Value: math.Inf(1)}, {Start: at.Add(3 * time.Minute).UnixMicro(), Value: math.Inf(-1)},
						{Start: at.Add(4 * time.Minute).UnixMicro(), Value: 1e21}, {Start: at.Add(5 * time.Minute).UnixMicro(), Value: -0.000001234}},
					LatestTS: latest},
				{Labels: map[string]string{}, Values: []metrics.Sample{}, LatestTS: latest},
				{Labels: nil, Values: nil},
			},
			Meta: queryMeta{LatestTS: &latest, SeriesCount: 3, Truncated: true},
		},
	}
	for name, resp := range cases {
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(resp); err != nil {
			t.Fatal(err)
		}
		got, err := resp.appendJSON(nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.Equal(got, want.Bytes()) {
			t.Errorf("%s:\n got %s\nwant %s", name, got, want.Bytes())
		}
	}
}
