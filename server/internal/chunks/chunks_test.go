package chunks

import (
	"math"
	"math/rand"
	"testing"

	"github.com/prometheus/prometheus/model/value"
)

func TestEncodeDecodeRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for _, n := range []int{0, 1, 2, 360, maxPerXOR, maxPerXOR + 1, 3*maxPerXOR + 17} {
		var samples []Sample
		ts := int64(1_700_000_000_000_000)
		for i := 0; i < n; i++ {
			ts += 5_000_000 + rng.Int63n(3000) // 5 s with microsecond jitter
			v := math.Round(rng.Float64()*1000) / 10
			switch i % 97 {
			case 3:
				v = math.Float64frombits(value.StaleNaN) // staleness markers keep their bits
			case 5:
				v = math.Inf(-1)
			}
			samples = append(samples, Sample{ts, v})
		}
		got, err := Decode(Encode(samples))
		if err != nil || len(got) != len(samples) {
			t.Fatalf("n=%d: %d samples back, %v", n, len(got), err)
		}
		for i := range got {
			if got[i].T != samples[i].T || math.Float64bits(got[i].V) != math.Float64bits(samples[i].V) {
				t.Fatalf("n=%d sample %d: %v, want %v", n, i, got[i], samples[i])
			}
		}
	}
	if _, err := Decode([]byte{0xff, 0xff, 0xff, 0x01, 1}); err == nil {
		t.Fatal("corrupt data decoded")
	}
}

func TestRollups(t *testing.T) {
	w := RollupWidth
	start := 100 * w
	samples := []Sample{
		{start + 1, 5}, {start + 2, math.NaN()}, {start + 3, -1}, // bucket 0
		{start + w + 10, 2}, {start + w + 20, 7}, // bucket 1
		{start + 3*w, 1.5e308}, {start + 3*w + 1, 1.5e308}, // bucket 3: the sum overflows
	}
	buckets := Rollup(samples, w)
	got, width, err := DecodeRollups(nil, start, EncodeRollups(start, w, buckets))
	if err != nil || len(got) != 3 || width != w {
		t.Fatalf("%d buckets of width %d, %v", len(got), width, err)
	}
	b0, b1, b3 := got[0], got[1], got[2]
	if b0.Start != start || b0.Count != 3 || !math.IsNaN(b0.Sum) || b0.Min != -1 || !math.IsNaN(b0.Max) || b0.Last != -1 || b0.LastT != start+3 {
		t.Errorf("bucket 0 (NaN is greatest, as in PostgreSQL): %+v", b0)
	}
	if b1.Start != start+w || b1.Count != 2 || b1.Sum != 9 || b1.Min != 2 || b1.Max != 7 || b1.Last != 7 || b1.LastT != start+w+20 || b1.Overflow {
		t.Errorf("bucket 1: %+v", b1)
	}
	if b3.Start != start+3*w || !b3.Overflow {
		t.Errorf("bucket 3 must say its sum overflowed: %+v", b3)
	}
}

// Hourly rollups of the same samples: one encoding carries its width, and
// each bucket folds the 5-minute buckets it covers.
func TestHourRollups(t *testing.T) {
	w, h := RollupWidth, HourRollupWidth
	start := 1000 * 2 * h // a 2-hour window
	samples := []Sample{
		{start + 1, 5}, {start + w + 10, 2}, {start + 11*w + 20, 7}, // hour 0
		{start + h, -3}, {start + 2*h - 1, 4}, // hour 1, its first and last microseconds
	}
	data := EncodeRollups(start, h, Rollup(samples, h))
	got, width, err := DecodeRollups(nil, start, data)
	if err != nil || width != h || len(got) != 2 {
		t.Fatalf("%d buckets of width %d, %v", len(got), width, err)
	}
	h0, h1 := got[0], got[1]
	if h0.Start != start || h0.Count != 3 || h0.Sum != 14 || h0.Min != 2 || h0.Max != 7 || h0.Last != 7 || h0.LastT != start+11*w+20 {
		t.Errorf("hour 0: %+v", h0)
	}
	if h1.Start != start+h || h1.Count != 2 || h1.Sum != 1 || h1.Last != 4 || h1.LastT != start+2*h-1 {
		t.Errorf("hour 1 (its last time is 1 h - 1 µs after its start): %+v", h1)
	}
	// 5-minute rollups of the same window stay 5-minute rollups.
	if _, width, err := DecodeRollups(nil, start, EncodeRollups(start, w, Rollup(samples, w))); err != nil || width != w {
		t.Errorf("5-minute rollups decoded with width %d, %v", width, err)
	}
	bad := append([]byte{'?'}, data[1:]...)
	if _, _, err := DecodeRollups(nil, start, bad); err == nil {
		t.Error("rollups with an unknown header decoded")
	}
}

// A window is cut into XOR chunks at SegmentWidth boundaries, and SkipBefore
// passes over the chunks wholly before a time without decoding them.
func TestSegmentsAndSkipBefore(t *testing.T) {
	start := 1000 * SegmentWidth // aligned
	var samples []Sample
	for ts := start + 2_500_000; ts < start+8*SegmentWidth; ts += 5_000_000 {
		samples = append(samples, Sample{ts, float64(ts % 1000)})
	}
	data := Encode(samples)
	segments := 0
	for rest := data; len(rest) > 0; segments++ {
		var ok bool
		if _, rest, ok = nextSegment(rest); !ok {
			t.Fatal("corrupt segment framing")
		}
	}
	if segments != 8 {
		t.Fatalf("%d XOR chunks for 8 segment widths", segments)
	}
	for _, at := range []int64{0, start, start + 2_500_000, start + SegmentWidth - 1, start + SegmentWidth + 2_500_000,
		start + 5*SegmentWidth + 7, start + 8*SegmentWidth, start + 100*SegmentWidth} {
		it := NewIterator(data)
		it.SkipBefore(at)
		var got []Sample
		decodedBefore := 0
		for it.Next() {
			if s := it.At(); s.T >= at {
				got = append(got, s)
			} else {
				decodedBefore++
			}
		}
		var want []Sample
		for _, s := range samples {
			if s.T >= at {
				want = append(want, s)
			}
		}
		if it.Err() != nil || len(got) != len(want) || (len(want) > 0 && got[0] != want[0]) {
			t.Fatalf("from %d: %d samples (first %v), want %d (first %v), %v", at, len(got), got[:min(1, len(got))], len(want), want[:min(1, len(want))], it.Err())
		}
		if perSegment := int(SegmentWidth / 5_000_000); decodedBefore > perSegment { // the chunk holding it (or before a gap)
			t.Errorf("from %d: %d samples before it decoded, want at most one segment's %d", at, decodedBefore, perSegment)
		}
	}
}
