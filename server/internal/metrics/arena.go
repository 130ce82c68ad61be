package metrics

import "sync"

// Arena holds the bytes a read keeps (compacted windows' rollups and
// samples, copied out of the database driver's buffers, which are reused
// for the next row) in shared blocks: one allocation per block instead of
// one per column of each row.
//
// A query's arena (NewArena) takes its blocks from a pool and hands them
// back on Release, for the next query: a day's dashboard query keeps some
// 120 KB of rollups, which, allocated afresh, was nearly half of what it
// allocated and so of how often the collector ran (its slowest requests
// were the ones a collection overlapped). Nothing kept in a released arena
// may be used again; a query's answer copies what it needs.
//
// The zero Arena allocates its blocks and never reuses them, for data that
// outlives a query (PromQL's series): they start at 4 KiB and double up to
// 64 KiB, so a read of a few chunks does not allocate 64 KiB it never uses.
type Arena struct {
	pooled bool
	blocks []*[]byte // blocks taken from arenaBlocks
	cur    []byte
}

// arenaBlock is the size of a pooled block, and of the largest one.
const arenaBlock = 64 << 10

var arenaBlocks = sync.Pool{New: func() any {
	b := make([]byte, 0, arenaBlock)
	return &b
}}

// NewArena returns an arena whose blocks go back to a pool on Release.
func NewArena() *Arena { return &Arena{pooled: true} }

// Keep copies b into the arena and returns the copy (nil for nil).
func (a *Arena) Keep(b []byte) []byte {
	if b == nil {
		return nil
	}
	if cap(a.cur)-len(a.cur) < len(b) {
		a.cur = a.block(len(b))
	}
	start := len(a.cur)
	a.cur = append(a.cur, b...)
	return a.cur[start:len(a.cur):len(a.cur)]
}

// block returns an empty block that holds at least n bytes. Earlier blocks
// stay alive through the slices cut from them.
func (a *Arena) block(n int) []byte {
	if a.pooled && n <= arenaBlock {
		p := arenaBlocks.Get().(*[]byte)
		a.blocks = append(a.blocks, p)
		return (*p)[:0]
	}
	size := arenaBlock
	if !a.pooled {
		size = min(max(2*cap(a.cur), 4<<10), arenaBlock)
	}
	return make([]byte, 0, max(size, n))
}

// Release hands a pooled arena's blocks back for other reads to reuse.
func (a *Arena) Release() {
	for _, p := range a.blocks {
		arenaBlocks.Put(p)
	}
	a.blocks, a.cur = nil, nil
}
