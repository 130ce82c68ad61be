// Package memlimit gives the Go runtime a soft memory limit below the
// container's, so that under memory pressure (a day-long PromQL query, a burst
// of ingest) the collector runs harder before the kernel would kill the
// process. GOMEMLIMIT, when set, wins; outside a container nothing changes.
// It also sets how much the heap may grow between collections (GOGC).
package memlimit

import (
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
)

// Fraction of the container's limit the runtime aims to stay under: the rest
// is room for what the runtime does not count (stacks of cgo threads, the
// kernel's page cache charged to the container, fragmentation).
const Fraction = 0.9

// CgroupRoot is where a container sees its own cgroup.
const CgroupRoot = "/sys/fs/cgroup"

// Decide returns the soft limit to set (0: leave the runtime's default) and
// where it came from, for the startup log.
func Decide(getenv func(string) string, cgroupRoot string) (limit int64, source string) {
	if v := getenv("GOMEMLIMIT"); v != "" {
		return 0, "GOMEMLIMIT=" + v
	}
	container, file, ok := containerLimit(cgroupRoot)
	if !ok {
		return 0, "none (no container memory limit found)"
	}
	return int64(float64(container) * Fraction), file
}

// Apply sets the limit Decide returns, if any, and returns the limit now in
// effect (0: none; GOMEMLIMIT's when that is set) and where it came from.
func Apply(getenv func(string) string, cgroupRoot string) (limit int64, source string) {
	limit, source = Decide(getenv, cgroupRoot)
	if limit > 0 {
		debug.SetMemoryLimit(limit)
	}
	if effective := debug.SetMemoryLimit(-1); effective != math.MaxInt64 { // -1 reads it
		return effective, source
	}
	return 0, source
}

// containerLimit reads the memory limit of the cgroup the process sees at
// root: cgroup v2's memory.max ("max": none), else cgroup v1's
// memory.limit_in_bytes (a huge value: none).
func containerLimit(root string) (limit int64, file string, ok bool) {
	for _, name := range []string{"memory.max", filepath.Join("memory", "memory.limit_in_bytes")} {
		path := filepath.Join(root, name)
		raw, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		text := strings.TrimSpace(string(raw))
		if text == "max" {
			return 0, "", false
		}
		n, err := strconv.ParseInt(text, 10, 64)
		if err != nil || n <= 0 || n >= math.MaxInt64/2 { // v1 writes "no limit" as a page-rounded MaxInt64
			return 0, "", false
		}
		return n, path, true
	}
	return 0, "", false
}

// GCPercent is the collector's target (GOGC) when GOGC is unset. The server's
// live heap is small (caches and the groups being written) while every
// request allocates afresh, so Go's default of 100 collected often: it took
// about a tenth of the server's CPU under trace ingest, and 300 gave about 7%
// more traces per second. The soft memory limit still bounds the heap.
const GCPercent = 300

// ApplyGCPercent sets GCPercent unless GOGC is set, and returns the
// percentage in effect and where it came from, for the startup log.
func ApplyGCPercent(getenv func(string) string) (percent int, source string) {
	if v := getenv("GOGC"); v != "" {
		percent = debug.SetGCPercent(-1)
		debug.SetGCPercent(percent)
		return percent, "GOGC=" + v
	}
	debug.SetGCPercent(GCPercent)
	return GCPercent, "default"
}
