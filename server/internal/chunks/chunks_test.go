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
	buckets := Rollup(samples)
	got, err := DecodeRollups(start, EncodeRollups(start, buckets))
	if err != nil || len(got) != 3 {
		t.Fatalf("%d buckets, %v", len(got), err)
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
