package chunks

import (
	"encoding/binary"
	"math"
	"slices"
)

// RollupWidth is the width of a rollup bucket in microseconds (5 minutes).
// Buckets are aligned to the epoch, so a query step that is a multiple of it
// contains whole buckets.
const RollupWidth int64 = 5 * 60 * 1_000_000

// HourRollupWidth is the width of the coarse rollups kept beside the
// 5-minute ones: a query whose step is whole hours folds (and reads) twelve
// times fewer buckets from them.
const HourRollupWidth int64 = 12 * RollupWidth

// Bucket aggregates the samples of one series in one rollup bucket.
type Bucket struct {
	Start int64 // microseconds, a multiple of its rollups' width
	Count uint32
	Sum   float64
	Min   float64
	Max   float64
	Last  float64 // the value of the newest sample
	LastT int64   // its time
	// Overflow: Sum overflowed float64 although no sample was infinite, so it
	// is not the true sum; readers use the samples instead.
	Overflow bool
}

// Greater orders values the way PostgreSQL orders float8: NaN above everything.
func Greater(a, b float64) bool {
	switch {
	case math.IsNaN(a):
		return !math.IsNaN(b)
	case math.IsNaN(b):
		return false
	}
	return a > b
}

// IsStaleMarker reports whether v is Prometheus' staleness marker: stored
// bit for bit for PromQL, it is not a value, so aggregations skip it.
func IsStaleMarker(v float64) bool { return math.Float64bits(v) == StaleMarkerBits }

// StaleMarkerBits is the bit pattern of Prometheus' staleness marker (a NaN).
const StaleMarkerBits uint64 = 0x7ff0000000000002

// Rollup aggregates samples (sorted by T) per bucket of width (RollupWidth
// or HourRollupWidth), skipping staleness markers.
func Rollup(samples []Sample, width int64) []Bucket {
	var out []Bucket
	infinite := false
	for _, s := range samples {
		if IsStaleMarker(s.V) {
			continue
		}
		start := floorDiv(s.T, width) * width
		if len(out) == 0 || out[len(out)-1].Start != start {
			out = append(out, Bucket{Start: start, Min: s.V, Max: s.V})
			infinite = false
		}
		b := &out[len(out)-1]
		b.Count++
		b.Sum += s.V
		infinite = infinite || math.IsInf(s.V, 0)
		b.Overflow = math.IsInf(b.Sum, 0) && !infinite
		if Greater(b.Min, s.V) {
			b.Min = s.V
		}
		if Greater(s.V, b.Max) {
			b.Max = s.V
		}
		b.Last, b.LastT = s.V, s.T // samples are in time order
	}
	return out
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// bucketSize is the encoded size of one bucket: index (1), flags (1),
// count (4), sum, min, max, last (8 each), last time offset (4).
const bucketSize = 1 + 1 + 4 + 4*8 + 4

// hourFormat starts encoded hourly rollups; 5-minute rollups have no
// header (they came first), so the two are told apart by their length.
const hourFormat = 'H'

// EncodeRollups encodes the buckets (of width RollupWidth or
// HourRollupWidth) of one window starting at windowStart (a multiple of the
// width, at most 256 buckets long) as fixed-size records.
func EncodeRollups(windowStart, width int64, buckets []Bucket) []byte {
	out := make([]byte, 0, 1+len(buckets)*bucketSize)
	if width == HourRollupWidth {
		out = append(out, hourFormat)
	}
	for _, b := range buckets {
		var flags byte
		if b.Overflow {
			flags = 1
		}
		out = append(out, byte((b.Start-windowStart)/width), flags)
		out = binary.LittleEndian.AppendUint32(out, b.Count)
		for _, f := range []float64{b.Sum, b.Min, b.Max, b.Last} {
			out = binary.LittleEndian.AppendUint64(out, math.Float64bits(f))
		}
		out = binary.LittleEndian.AppendUint32(out, uint32(b.LastT-b.Start))
	}
	return out
}

// DecodeRollups is the inverse of EncodeRollups: it appends the buckets to
// dst[:0] (a reader reuses one slice for every window) and returns their
// width too.
func DecodeRollups(dst []Bucket, windowStart int64, data []byte) ([]Bucket, int64, error) {
	width := RollupWidth
	if len(data)%bucketSize == 1 && data[0] == hourFormat {
		width, data = HourRollupWidth, data[1:]
	}
	if len(data)%bucketSize != 0 {
		return nil, 0, ErrCorrupt
	}
	out := slices.Grow(dst[:0], len(data)/bucketSize)
	for len(data) > 0 {
		b := Bucket{Start: windowStart + int64(data[0])*width, Overflow: data[1]&1 != 0}
		b.Count = binary.LittleEndian.Uint32(data[2:])
		f := func(at int) float64 { return math.Float64frombits(binary.LittleEndian.Uint64(data[at:])) }
		b.Sum, b.Min, b.Max, b.Last = f(6), f(14), f(22), f(30)
		b.LastT = b.Start + int64(binary.LittleEndian.Uint32(data[38:]))
		data = data[bucketSize:]
		out = append(out, b)
	}
	return out, width, nil
}
