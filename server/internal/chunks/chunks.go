// Package chunks encodes closed windows of a series for storage: the samples
// with Prometheus' XOR (Gorilla) encoding from tsdb/chunkenc, and per-bucket
// aggregates (rollups) that let long-range queries skip the samples. It has
// no SQL and no HTTP.
//
// Timestamps are microseconds since the epoch (PostgreSQL's precision), not
// Prometheus' milliseconds: chunkenc does not care about the unit, and points
// keep their exact identity in every tier.
package chunks

import (
	"encoding/binary"
	"errors"

	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// Sample is one point of a series.
type Sample struct {
	T int64 // microseconds since the epoch
	V float64
}

// maxPerXOR bounds the samples of one XOR chunk (its header counts them in 16 bits).
const maxPerXOR = 8192

// SegmentWidth is the time one XOR chunk of a window covers at most
// (microseconds, aligned to the epoch): a reader that needs the samples from
// some time on skips the chunks before it undecoded (Iterator.SkipBefore).
// Each chunk costs its first sample in full, about 16 bytes.
const SegmentWidth = 3 * RollupWidth

// Encode returns samples (sorted by T, unique) as XOR chunks, one per
// SegmentWidth (and at most maxPerXOR samples), each prefixed with its
// length as a uvarint.
func Encode(samples []Sample) []byte {
	var out []byte
	for len(samples) > 0 {
		end := (floorDiv(samples[0].T, SegmentWidth) + 1) * SegmentWidth
		n := 1
		for n < len(samples) && n < maxPerXOR && samples[n].T < end {
			n++
		}
		c := chunkenc.NewXORChunk()
		app, _ := c.Appender() // a new chunk's appender cannot fail
		for _, s := range samples[:n] {
			app.Append(0, s.T, s.V)
		}
		b := c.Bytes()
		out = binary.AppendUvarint(out, uint64(len(b)))
		out = append(out, b...)
		samples = samples[n:]
	}
	return out
}

// ErrCorrupt: stored chunk data cannot be decoded.
var ErrCorrupt = errors.New("chunks: corrupt chunk data")

// Iterator walks the samples of Encode's output in time order.
type Iterator struct {
	data []byte
	it   chunkenc.Iterator // of the current XOR chunk; nil between chunks
	err  error

	// Every XOR chunk of data is read through one chunk and one iterator
	// (a router's read decodes a few chunks; allocating these per chunk
	// was a tenth of its garbage).
	chunk chunkenc.XORChunk
	xor   chunkenc.Iterator
}

// NewIterator iterates over data (Encode's output).
func NewIterator(data []byte) *Iterator { return &Iterator{data: data} }

// Next advances to the next sample; it returns false at the end or on error.
func (i *Iterator) Next() bool {
	for {
		if i.it != nil {
			if i.it.Next() != chunkenc.ValNone {
				return true
			}
			if err := i.it.Err(); err != nil {
				i.err = err
				return false
			}
			i.it = nil
		}
		if len(i.data) == 0 || i.err != nil {
			return false
		}
		n, size := binary.Uvarint(i.data)
		if size <= 0 || uint64(len(i.data)-size) < n {
			i.err = ErrCorrupt
			return false
		}
		i.chunk.Reset(i.data[size : size+int(n)])
		i.data = i.data[size+int(n):]
		i.xor = i.chunk.Iterator(i.xor)
		i.it = i.xor
	}
}

// SkipBefore skips, before the first Next, the XOR chunks whose samples are
// all earlier than t (the next chunk starts at or before t), without
// decoding them. Samples earlier than t may still come first.
func (i *Iterator) SkipBefore(t int64) {
	if i.it != nil {
		return
	}
	for {
		_, rest, ok := nextSegment(i.data)
		if !ok {
			return
		}
		next, _, ok := nextSegment(rest)
		if !ok {
			return
		}
		i.chunk.Reset(next)
		i.xor = i.chunk.Iterator(i.xor)
		if i.xor.Next() == chunkenc.ValNone {
			return
		}
		if first, _ := i.xor.At(); first > t {
			return
		}
		i.data = rest
	}
}

// nextSegment splits data into its first length-prefixed XOR chunk and the rest.
func nextSegment(data []byte) (seg, rest []byte, ok bool) {
	n, size := binary.Uvarint(data)
	if size <= 0 || uint64(len(data)-size) < n {
		return nil, nil, false
	}
	return data[size : size+int(n)], data[size+int(n):], true
}

// At returns the current sample.
func (i *Iterator) At() Sample {
	t, v := i.it.At()
	return Sample{T: t, V: v}
}

// Err returns the error that ended the iteration, if any.
func (i *Iterator) Err() error { return i.err }

// Decode returns all samples of data.
func Decode(data []byte) ([]Sample, error) {
	var out []Sample
	it := NewIterator(data)
	for it.Next() {
		out = append(out, it.At())
	}
	return out, it.Err()
}
