package metrics

import (
	"fmt"
	"math/rand"
	"reflect"
	"strings"
	"testing"
	"time"
)

var parseNow = Window{Now: time.Date(2026, 2, 14, 12, 0, 0, 0, time.UTC), RetentionDays: 30}

// agree checks the fast scanner against the encoding/json path: whenever the
// scanner accepts a body, the slow path must accept it with the same points.
func agree(t *testing.T, body string) (fastOK bool) {
	t.Helper()
	fast, ok := fastBatch([]byte(body), parseNow)
	slow, err := parseBatchSlow([]byte(body), parseNow)
	if !ok {
		return false
	}
	if err != nil {
		t.Fatalf("fast path accepted what the slow path rejects (%v):\n%s", err, body)
	}
	if len(fast) != len(slow) || (len(fast) > 0 && !reflect.DeepEqual(fast, slow)) {
		t.Fatalf("paths disagree on\n%s\nfast: %+v\nslow: %+v", body, fast, slow)
	}
	return true
}

func TestFastParserAgreesWithEncodingJSON(t *testing.T) {
	cases := []string{
		`{"metrics":[]}`,
		` { "metrics" : [ { "name" : "a" , "value" : 1 } ] } `,
		`{"metrics":[{"name":"gpu_utilization","labels":{"node_id":"n1","gpu_index":"0"},"value":87.5,"timestamp":"2026-02-14T10:00:00Z"}]}`,
		`{"metrics":[{"timestamp":"2026-02-14T10:00:00.123456789+02:00","value":-0.0,"labels":{},"name":"x:y.z-w"}]}`,
		`{"metrics":[{"name":"x","labels":null,"value":1e-3,"timestamp":null}]}`,
		`{"metrics":[{"name":"x","value":1E+2,"labels":{"k":"vé ✓"}}]}`,
		`{"metrics":[{"name":"x","value":1,"labels":{"b":"2","a":"1"}},{"name":"x","value":2,"labels":{"a":"1","b":"2"}}]}`,
		`{"metrics":[{"name":"x","value":1,"labels":{"k":"with \"quote\""}}]}`,
		`{"metrics":[{"name":"x","value":1,"labels":{"k":"a","k":"b"}}]}`,
		`{"metrics":[{"name":"x","name":"y","value":1}]}`,
		`{"metrics":[{"name":"x","value":1,"extra":true}]}`,
		`{"metrics":[{"name":"x","value":01}]}`,
		`{"metrics":[{"name":"x","value":1.}]}`,
		`{"metrics":[{"name":"x","value":1e400}]}`,
		`{"metrics":[{"name":"x","value":"1"}]}`,
		`{"metrics":[{"name":"x","value":1}],"other":1}`,
		`{"metrics":[{"name":"x","value":1}]}x`,
		`{"metrics":[{"name":"x","value":1},]}`,
		"{\"metrics\":[{\"name\":\"x\xff\",\"value\":1}]}",
		`{"metrics":[{"name":"x","value":1,"timestamp":""}]}`,
		`{"metrics":[{"name":"x","value":1,"timestamp":"1999-01-01T00:00:00Z"}]}`,
	}
	for _, c := range cases {
		agree(t, c)
	}
	if !agree(t, cases[2]) || !agree(t, cases[6]) {
		t.Fatal("the fast path must accept the common shape")
	}
	// Generated bodies: random mixes of valid and odd pieces.
	rng := rand.New(rand.NewSource(1))
	pieces := map[string][]string{
		"name":  {`"gpu_util"`, `"a.b-c:d"`, `""`, `"bad name"`, `"9lead"`, `5`, `"x\u0041"`, `null`},
		"value": {`1`, `-2.5`, `0`, `1e3`, `-0.001E-2`, `"NaN"`, `true`, `null`, `1e999`, `00`},
		"labels": {`{}`, `{"a":"b"}`, `{"b":"1","a":"2","c":""}`, `{"a":1}`, `{"bad-key":"x"}`, `null`, `[]`,
			`{"a":"` + strings.Repeat("v", 257) + `"}`, `{"a":"\n"}`},
		"timestamp": {`"2026-02-14T10:00:00Z"`, `"2026-02-14T10:00:00.5+01:00"`, `null`, `"yesterday"`, `1700000000`, `""`},
	}
	keys := []string{"name", "value", "labels", "timestamp"}
	accepted := 0
	for n := 0; n < 3000; n++ {
		var pts []string
		for j := rng.Intn(4); j >= 0; j-- {
			var members []string
			for _, k := range rng.Perm(len(keys)) {
				if rng.Intn(6) == 0 {
					continue // leave the member out
				}
				opts := pieces[keys[k]]
				members = append(members, fmt.Sprintf(`"%s":%s`, keys[k], opts[rng.Intn(len(opts))]))
			}
			pts = append(pts, "{"+strings.Join(members, ",")+"}")
		}
		if agree(t, `{"metrics":[`+strings.Join(pts, ",")+`]}`) {
			accepted++
		}
	}
	if accepted == 0 {
		t.Fatal("no generated body took the fast path")
	}
}

// FuzzParseBatch: no input crashes the parser, and the two paths never disagree.
// `go test` runs the seed corpus; `go test -fuzz=FuzzParseBatch` explores.
func FuzzParseBatch(f *testing.F) {
	for _, s := range []string{
		`{"metrics":[{"name":"x","labels":{"a":"b"},"value":1,"timestamp":"2026-02-14T10:00:00Z"}]}`,
		`{"metrics":[]}`, `{"metrics":[{"name":"x","value":1e400}]}`, `[`, ``, `{"metrics":[{}]}`,
		`{"metrics":[{"name":"x","value":1,"labels":{"k":"\u00e9"}}]}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		agree(t, body)
		_, _ = ParseBatch([]byte(body), parseNow)
	})
}
