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
