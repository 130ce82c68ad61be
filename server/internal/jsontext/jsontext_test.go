package jsontext

import "testing"

func TestSanitizeAndProblem(t *testing.T) {
	cases := []struct{ in, out, problem string }{
		{`"plain"`, `"plain"`, ""},
		{`"caf\u00e9 \ud83d\ude00"`, `"caf\u00e9 \ud83d\ude00"`, ""}, // a valid surrogate pair stays
		{`"a\u0000b"`, `"a\ufffdb"`, "contains a NUL character"},
		{`{"k\u0000":"v"}`, `{"k\ufffd":"v"}`, "contains a NUL character"},
		{`"x\ud800y"`, `"x\ufffdy"`, "contains a lone UTF-16 surrogate"},
		{`"x\ud800\u0041"`, `"x\ufffd\u0041"`, "contains a lone UTF-16 surrogate"},
		{`"\udc00"`, `"\ufffd"`, "contains a lone UTF-16 surrogate"},
		{`"ends with \ud83d"`, `"ends with \ufffd"`, "contains a lone UTF-16 surrogate"},
		{"\"bad \xff byte\"", `"bad \ufffd byte"`, "is not valid UTF-8"},
		{`"escaped \\u0000 is text"`, `"escaped \\u0000 is text"`, ""}, // a backslash, then u0000: no NUL
		{`["\"\u0000"]`, `["\"\ufffd"]`, "contains a NUL character"},
	}
	for _, c := range cases {
		if got := string(Sanitize([]byte(c.in))); got != c.out {
			t.Errorf("Sanitize(%s) = %s, want %s", c.in, got, c.out)
		}
		if got := Problem([]byte(c.in)); got != c.problem {
			t.Errorf("Problem(%s) = %q, want %q", c.in, got, c.problem)
		}
		if Problem(Sanitize([]byte(c.in))) != "" {
			t.Errorf("Sanitize(%s) still has a problem", c.in)
		}
	}
}

func FuzzSanitize(f *testing.F) {
	for _, s := range []string{`"a\u0000"`, `"\ud800"`, "\"\xff\"", `{"a":["\udbff\udfff"]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		out := Sanitize(raw)
		if p := Problem(out); p != "" {
			t.Fatalf("Sanitize(%q) = %q still %s", raw, out, p)
		}
	})
}
