package httpapi

import (
	"testing"
	"time"
)

func TestParseTimeForms(t *testing.T) {
	utc := func(s string) time.Time { v, _ := time.Parse(time.RFC3339Nano, s); return v }
	cases := map[string]time.Time{
		"2026-11-30T09:00:00Z":          utc("2026-11-30T09:00:00Z"),
		"2026-11-30T09:00:00.5+08:00":   utc("2026-11-30T01:00:00.5Z"),
		"2026-11-30T09:00:00 08:00":     utc("2026-11-30T01:00:00Z"), // "+" sent unencoded arrives as a space
		"2026-11-30T09:00:00-0130":      utc("2026-11-30T10:30:00Z"),
		"2026-11-30T09:00:00":           utc("2026-11-30T09:00:00Z"), // no offset: UTC
		"2026-11-30T09:00:00.123456789": utc("2026-11-30T09:00:00.123456789Z"),
		"2026-11-30T09:00":              utc("2026-11-30T09:00:00Z"),
		"2026-11-30":                    utc("2026-11-30T00:00:00Z"),
		"1764493200":                    utc("2025-11-30T09:00:00Z"),
		"1764493200.25":                 utc("2025-11-30T09:00:00.25Z"),
		"1764493200250":                 utc("2025-11-30T09:00:00.25Z"), // milliseconds when ≥ 1e12
	}
	for in, want := range cases {
		got, ok := parseTime(in)
		if !ok || !got.Equal(want) {
			t.Errorf("parseTime(%q) = %s, %v; want %s", in, got, ok, want)
		}
	}
	for _, bad := range []string{"yesterday", "2026-13-01", "-5", "1e400", "NaN", "2026-11-30T25:00:00Z", "99999999999999999999"} {
		if got, ok := parseTime(bad); ok {
			t.Errorf("parseTime(%q) = %s, want rejected", bad, got)
		}
	}
}
