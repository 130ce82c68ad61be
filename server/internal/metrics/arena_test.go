package metrics

import (
	"bytes"
	"testing"
)

// An arena's copies hold what was kept even after the source changes, keep
// apart from each other (appending to one does not overwrite the next), and
// a released arena's blocks serve the next arena.
func TestArenaKeepsCopies(t *testing.T) {
	for name, a := range map[string]*Arena{"pooled": NewArena(), "zero": {}} {
		if a.Keep(nil) != nil {
			t.Fatalf("%s: Keep(nil) is not nil", name)
		}
		src := make([]byte, 0, arenaBlock+1)
		var kept [][]byte
		var want [][]byte
		for i, n := range []int{0, 1, 100, 3000, 5000, 40000, arenaBlock, arenaBlock + 1, 7} {
			src = src[:n]
			for j := range src {
				src[j] = byte(i + j)
			}
			kept = append(kept, a.Keep(src))
			want = append(want, bytes.Clone(src))
			clear(src) // the driver reuses its buffer for the next row
		}
		for i := range kept {
			if !bytes.Equal(kept[i], want[i]) || len(kept[i]) != cap(kept[i]) {
				t.Fatalf("%s: copy %d holds %d bytes (cap %d), not what was kept", name, i, len(kept[i]), cap(kept[i]))
			}
		}
		_ = append(kept[1], 0xff) // full capacity: appending copies
		if kept[2][0] != want[2][0] {
			t.Fatalf("%s: appending to one copy overwrote the next", name)
		}
		a.Release()
	}
	b := NewArena()
	defer b.Release()
	if got := b.Keep([]byte("x")); !bytes.Equal(got, []byte("x")) || cap(got) != 1 {
		t.Fatalf("a released block's arena keeps %q", got)
	}
}
