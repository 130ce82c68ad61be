package traces

import (
	"encoding/json"
	"strings"
	"testing"
)

// DecodeString takes a shortcut for plain strings; for every input it must
// give what encoding/json gives.
func TestDecodeStringMatchesEncodingJSON(t *testing.T) {
	inputs := []string{
		`""`, `"plain"`, `"with space and /slash"`, `"2026-12-01T19:00:00.123456Z"`,
		`"esc\"aped"`, `"back\\slash"`, `"\u00e9"`, `"caf` + "\u00e9" + `"`, `"tab` + "\t" + `"`,
		"\"bad \xff byte\"", `"\ud800"`, `"a\u0000b"`, ` "lead"`, `"trail" `, `"`, `"a"b"`,
		`123`, `null`, `true`, `{"a":1}`, `["x"]`, ``, `"unterminated`,
	}
	for _, in := range inputs {
		got, gotErr := DecodeString([]byte(in))
		var want string
		wantErr := json.Unmarshal([]byte(in), &want)
		if got != want || (gotErr == nil) != (wantErr == nil) {
			t.Errorf("DecodeString(%q) = %q, %v; encoding/json: %q, %v", in, got, gotErr, want, wantErr)
		}
	}
}

// splitObject must split every object exactly as json.Unmarshal into a
// map[string]json.RawMessage does, and refuse what is not an object (null
// included: bodyFields answers it as a missing body before splitting).
func TestSplitObjectMatchesEncodingJSON(t *testing.T) {
	inputs := []string{
		`{}`, ` { } `, `{"a":1}`, "{\n\t\"a\" :\r\n 1 ,\"b\":\"x\"\n}", `{"a":1,"a":2}`,
		`{"s":"with } and ] and \" and \\ inside","n":-1.5e+10,"t":true,"f":false,"z":null}`,
		`{"o":{"p":[1,{"q":"}"}],"r":{}},"e":[],"l":[[[]]]}`,
		`{"esc\"aped":1,"back\\slash":2,"\u00e9":3,"caf` + "\u00e9" + `":4,"\ud800":5}`,
		"{\"bad \xff key\":1,\"ok\":\"bad \xfe value\"}",
		`{"":0,"userId":"u","metadata":{"a":{"b":"c"}},"promptTokens":120}`,
		`[]`, `[{"a":1}]`, `"s"`, `12`, `true`,
	}
	for _, in := range inputs {
		var want map[string]json.RawMessage
		wantErr := json.Unmarshal([]byte(in), &want)
		got, ok := splitObject([]byte(in))
		if ok != (wantErr == nil) {
			t.Errorf("%q: ok %v, encoding/json: %v", in, ok, wantErr)
			continue
		}
		if len(got) != len(want) {
			t.Errorf("%q: %d members, encoding/json %d", in, len(got), len(want))
		}
		for k, v := range want {
			if string(got[k]) != string(v) {
				t.Errorf("%q: member %q = %s, encoding/json %s", in, k, got[k], v)
			}
		}
	}
	// A member cannot grow into the next one.
	fields, _ := splitObject([]byte(`{"a":"x","b":"y"}`))
	_ = append(fields["a"], 'Z')
	if string(fields["b"]) != `"y"` {
		t.Errorf("appending to a member changed the next one: %s", fields["b"])
	}
}

func TestSplitNativeBatchMatchesEncodingJSON(t *testing.T) {
	inputs := []string{
		`{"trace":{"id":"t"},"observations":[{"id":"a"},{"id":"b","x":[1,{"y":"]"}]}]}`,
		` { "observations" : [ ] , "trace" : null } `, `{"observations":null}`, `{}`, `{"other":1}`,
		`{"trace":{"id":"a"},"trace":{"id":"b"}}`, `{"Trace":{"id":"t"}}`, `{"trace":{"id":"t"},"OBSERVATIONS":[{"id":"o"}]}`,
		`{"observations":{"id":"o"}}`, `{"observations":"x"}`, `{"trace":{"id":"t"}} trailing`, `{"trace":`, `[]`, `null`, ``,
		"{\"observations\":[\n{\"id\":\"o\"}\t,\r\n{}\n]}",
	}
	for _, in := range inputs {
		var want nativeBatch
		wantErr := json.NewDecoder(strings.NewReader(in)).Decode(&want)
		got, err := splitNativeBatch([]byte(in))
		if (err == nil) != (wantErr == nil) {
			t.Errorf("%q: error %v, encoding/json: %v", in, err, wantErr)
			continue
		}
		if string(got.Trace) != string(want.Trace) || (got.Observations == nil) != (want.Observations == nil) || len(got.Observations) != len(want.Observations) {
			t.Errorf("%q: got trace %s, %d observations; encoding/json %s, %d", in, got.Trace, len(got.Observations), want.Trace, len(want.Observations))
			continue
		}
		for i := range want.Observations {
			if string(got.Observations[i]) != string(want.Observations[i]) {
				t.Errorf("%q: observations[%d] = %s, encoding/json %s", in, i, got.Observations[i], want.Observations[i])
			}
		}
	}
}

// The usage shortcuts must give what encoding/json gives.
func TestNumbersMatchEncodingJSON(t *testing.T) {
	for _, in := range []string{`0`, `-0`, `120`, `-1.5e+10`, `1E400`, `1e-7`, `0.000001`, `123456789012345678901234`, `"12"`, `true`, `null`, `{}`, `[1]`} {
		var want float64
		wantErr := json.Unmarshal([]byte(in), &want)
		got, ok := number([]byte(in))
		if ok != (wantErr == nil) || (ok && got != want) {
			t.Errorf("number(%s) = %v, %v; encoding/json %v, %v", in, got, ok, want, wantErr)
		}
	}
	for _, in := range []string{`{}`, `{"input":120,"output":48}`, `{"a":1,"a":2}`, `{"a":null,"b":1}`, `{"a":"1"}`, `{"\u00e9":1}`, `[]`, `null`, `"x"`} {
		var want map[string]float64
		if json.Unmarshal([]byte(in), &want) != nil {
			want = nil
		}
		got := decodeNumbers([]byte(in))
		if (got == nil) != (want == nil) || len(got) != len(want) {
			t.Errorf("decodeNumbers(%s) = %v; encoding/json %v", in, got, want)
			continue
		}
		for k, v := range want {
			if g, ok := got[k]; !ok || g != v {
				t.Errorf("decodeNumbers(%s)[%q] = %v; encoding/json %v", in, k, g, v)
			}
		}
	}
	for _, m := range []map[string]float64{{}, {"total": 168, "input": 120, "output": 48}, {"a": 1e-7, "b": 1e21, "c": -2.5e-9, "d": 0.1, "e": 123456789}, {"<&>\"\\é\x01": 1}} {
		want, _ := json.Marshal(m)
		if got := numbersJSON(m); string(got) != string(want) {
			t.Errorf("numbersJSON(%v) = %s; encoding/json %s", m, got, want)
		}
	}
}

func TestEntityAccessorsMatchEncodingJSON(t *testing.T) {
	for _, in := range []string{`[]`, `["gateway"]`, `[ "a" , "b\"c", "\u00e9" ]`, `null`, `[null]`, `["a",1]`, `{}`, `"a"`} {
		var want []string
		_ = json.Unmarshal([]byte(in), &want)
		e := Entity{Fields: map[string]json.RawMessage{"tags": json.RawMessage(in)}}
		got := e.Strings("tags")
		if want == nil {
			want = []string{}
		}
		if strings.Join(got, "\x00") != strings.Join(want, "\x00") || len(got) != len(want) {
			t.Errorf("Strings(%s) = %q; encoding/json %q", in, got, want)
		}
	}
	for _, in := range []string{`true`, `false`, `null`, `1`, `"true"`} {
		var want bool
		_ = json.Unmarshal([]byte(in), &want)
		e := Entity{Fields: map[string]json.RawMessage{"public": json.RawMessage(in)}}
		if got := e.Bool("public"); got != want {
			t.Errorf("Bool(%s) = %v; encoding/json %v", in, got, want)
		}
	}
}
