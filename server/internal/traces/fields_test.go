package traces

import (
	"encoding/json"
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
