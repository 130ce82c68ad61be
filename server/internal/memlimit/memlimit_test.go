package memlimit

import (
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"
)

func cgroup(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, text := range files {
		path := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func noEnv(string) string { return "" }

func TestDecide(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		env   string
		want  int64
	}{
		{"cgroup v2 limit", map[string]string{"memory.max": "1073741824\n"}, "", 966367641},
		{"cgroup v2 without a limit", map[string]string{"memory.max": "max\n"}, "", 0},
		{"cgroup v1 limit", map[string]string{"memory/memory.limit_in_bytes": "536870912\n"}, "", 483183820},
		{"cgroup v1 without a limit", map[string]string{"memory/memory.limit_in_bytes": "9223372036854771712\n"}, "", 0},
		{"v2 wins over v1", map[string]string{"memory.max": "1000", "memory/memory.limit_in_bytes": "2000"}, "", 900},
		{"unreadable value", map[string]string{"memory.max": "lots\n"}, "", 0},
		{"not in a container", nil, "", 0},
		{"GOMEMLIMIT set", map[string]string{"memory.max": "1073741824\n"}, "700MiB", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			getenv := noEnv
			if tc.env != "" {
				getenv = func(k string) string {
					if k == "GOMEMLIMIT" {
						return tc.env
					}
					return ""
				}
			}
			got, source := Decide(getenv, cgroup(t, tc.files))
			if got != tc.want {
				t.Fatalf("limit %d (%s), want %d", got, source, tc.want)
			}
			if source == "" {
				t.Fatal("no source for the startup log")
			}
		})
	}
}

func TestApplySetsTheRuntimeLimit(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(before)
	limit, _ := Apply(noEnv, cgroup(t, map[string]string{"memory.max": "2147483648"}))
	if got := debug.SetMemoryLimit(-1); limit != 1932735283 || got != limit {
		t.Fatalf("runtime limit %d after Apply returned %d, want 1932735283", got, limit)
	}
}

func TestApplyReportsGOMEMLIMITsLimit(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(before)
	debug.SetMemoryLimit(700 << 20) // what the runtime does at start with GOMEMLIMIT=700MiB
	getenv := func(k string) string {
		if k == "GOMEMLIMIT" {
			return "700MiB"
		}
		return ""
	}
	if limit, source := Apply(getenv, cgroup(t, map[string]string{"memory.max": "1073741824"})); limit != 700<<20 || source != "GOMEMLIMIT=700MiB" {
		t.Fatalf("Apply reported %d from %q, want GOMEMLIMIT's 734003200", limit, source)
	}
}

func TestApplyGCPercent(t *testing.T) {
	before := debug.SetGCPercent(-1)
	defer debug.SetGCPercent(before)
	debug.SetGCPercent(100)
	if got, source := ApplyGCPercent(noEnv); got != GCPercent || source != "default" || debug.SetGCPercent(GCPercent) != GCPercent {
		t.Fatalf("without GOGC: %d from %q, want %d by default", got, source, GCPercent)
	}
	// GOGC set: the runtime read it at start; it is left as it is.
	debug.SetGCPercent(150)
	env := func(k string) string {
		if k == "GOGC" {
			return "150"
		}
		return ""
	}
	if got, source := ApplyGCPercent(env); got != 150 || source != "GOGC=150" || debug.SetGCPercent(150) != 150 {
		t.Fatalf("with GOGC=150: %d from %q, want it kept", got, source)
	}
}
