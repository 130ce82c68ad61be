package metrics

import (
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"
)

// sampleJSON is how a sample was written before sampleWriter: the general
// time and float formatting, which sampleWriter must match byte for byte.
func sampleJSON(s Sample) string {
	b := []byte(`{"timestamp":"`)
	b = time.UnixMicro(s.Start).UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","value":`...)
	switch {
	case math.IsNaN(s.Value):
		b = append(b, `"NaN"`...)
	case math.IsInf(s.Value, 1):
		b = append(b, `"+Inf"`...)
	case math.IsInf(s.Value, -1):
		b = append(b, `"-Inf"`...)
	default:
		b = strconv.AppendFloat(b, s.Value, 'g', -1, 64)
	}
	return string(append(b, '}'))
}

func TestSampleWriterMatchesGeneralFormatting(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	times := []time.Time{
		time.Unix(0, 0), time.Unix(-1, 0), time.Unix(-86401, 0), time.Unix(fastTimeLimit-1, 0), time.Unix(fastTimeLimit, 0),
		time.Date(2026, 12, 31, 23, 59, 59, 0, time.UTC), time.Date(2028, 2, 29, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 12, 1, 5, 35, 0, 120_000_000, time.UTC), time.Date(2026, 12, 1, 5, 35, 0, 123_000, time.UTC), {},
	}
	for range 2000 {
		sec := r.Int64N(4_000_000_000)
		times = append(times, time.Unix(sec, 0))
	}
	values := []float64{0, math.Copysign(0, -1), 1, -1, 999_999, -999_999, 1e6, -1e6, 123_456, 1e21, 1e-7, 0.1, 5e-324,
		math.MaxFloat64, math.NaN(), math.Inf(1), math.Inf(-1), 1.5, 45.28333333333333, 2.5e6}
	for range 2000 {
		values = append(values, float64(r.IntN(3_000_000)-1_500_000), float64(r.IntN(2000))/10, r.NormFloat64()*1e4)
	}
	var w sampleWriter // one writer throughout: its day cache must follow every change of day
	for i := range 20000 {
		s := Sample{Start: times[r.IntN(len(times))].UnixMicro(), Value: values[r.IntN(len(values))]}
		if i%3 == 0 { // runs of samples a step apart, as in an answer
			s.Start = times[i%len(times)].Add(time.Duration(i%50) * time.Minute).UnixMicro()
		}
		if got, want := string(w.append(nil, s)), sampleJSON(s); got != want {
			t.Fatalf("sample %d µs %v:\n got %s\nwant %s", s.Start, s.Value, got, want)
		}
	}
}
