package metrics

import (
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// fastBatch parses the common shape of a push body without reflection:
//
//	{"metrics":[{"name":"…","labels":{"k":"v",…},"value":1.5,"timestamp":"…"},…]}
//
// It accepts a strict subset of JSON — strings without escapes, no unknown or
// repeated keys — and checks every rule of the push contract. Anything else
// (including every invalid body) returns ok=false, and the caller parses the
// body again with encoding/json to accept it or to say precisely what is wrong.
// Within its subset it must agree exactly with that slower path (a test
// compares the two on generated bodies).
func fastBatch(body []byte, w Window) (points []Point, ok bool) {
	p := fastParser{b: body, times: map[string]time.Time{}, names: map[string]string{}, window: w}
	p.ws()
	if !p.lit('{') || p.key() != "metrics" || !p.lit(':') || !p.lit('[') {
		return nil, false
	}
	points = make([]Point, 0, len(body)/100)
	if p.peek() != ']' {
		for {
			if len(points) == MaxPointsPerBatch {
				return nil, false
			}
			var pt Point
			if !p.point(&pt) {
				return nil, false
			}
			points = append(points, pt)
			if p.lit(',') {
				continue
			}
			break
		}
	}
	if !p.lit(']') || !p.lit('}') {
		return nil, false
	}
	if p.ws(); p.i != len(p.b) {
		return nil, false
	}
	return points, true
}

type fastParser struct {
	b      []byte
	i      int
	window Window
	times  map[string]time.Time // timestamps repeat within a batch: parse each once
	names  map[string]string    // interned names
	pairs  []labelPair
}

// labelPair points into the body; strings are made only for labels objects
// not seen before.
type labelPair struct{ k, v []byte }

// canonicalLabels remembers the canonical JSON of raw labels objects across
// requests: agents send the same objects on every push, and canonicalising
// each (sort, validate, encode) was a sixth of the server's CPU during
// ingest. The mapping is a pure function of the raw bytes, so a cached
// answer is always the one parsing would give; the cache is cleared when full.
var canonicalLabels = labelsCache{max: 1 << 16}

type labelsCache struct {
	mu  sync.RWMutex
	max int
	m   map[string]string
}

func (c *labelsCache) get(raw []byte) (string, bool) {
	c.mu.RLock()
	v, ok := c.m[string(raw)]
	c.mu.RUnlock()
	return v, ok
}

func (c *labelsCache) put(raw []byte, canonical string) {
	c.mu.Lock()
	if c.m == nil || len(c.m) >= c.max {
		c.m = make(map[string]string)
	}
	c.m[string(raw)] = canonical
	c.mu.Unlock()
}

func (p *fastParser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *fastParser) peek() byte {
	p.ws()
	if p.i < len(p.b) {
		return p.b[p.i]
	}
	return 0
}

func (p *fastParser) lit(c byte) bool {
	if p.peek() == c {
		p.i++
		return true
	}
	return false
}

// rawString returns the bytes of a string without escapes, or ok=false.
func (p *fastParser) rawString() ([]byte, bool) {
	if !p.lit('"') {
		return nil, false
	}
	start := p.i
	ascii := true
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			s := p.b[start:p.i]
			p.i++
			if !ascii && !utf8.Valid(s) {
				return nil, false
			}
			return s, true
		case c == '\\' || c < 0x20:
			return nil, false
		case c >= 0x80:
			ascii = false
		}
		p.i++
	}
	return nil, false
}

func (p *fastParser) key() string {
	s, ok := p.rawString()
	if !ok {
		return ""
	}
	return string(s) // short keys; compared, not kept
}

func (p *fastParser) null() bool {
	if p.peek() == 'n' && len(p.b)-p.i >= 4 && string(p.b[p.i:p.i+4]) == "null" {
		p.i += 4
		return true
	}
	return false
}

func (p *fastParser) point(pt *Point) bool {
	if !p.lit('{') {
		return false
	}
	var seen [4]bool // name, labels, value, timestamp
	var tsRaw []byte
	hasTS := false
	labelsJSON := "{}"
	for first := true; ; first = false {
		if first && p.lit('}') {
			break
		}
		k, ok := p.rawString()
		if !ok || !p.lit(':') {
			return false
		}
		switch string(k) {
		case "name":
			if seen[0] {
				return false
			}
			seen[0] = true
			s, ok := p.rawString()
			if !ok || len(s) == 0 || len(s) > MaxNameLength {
				return false
			}
			name, ok := p.names[string(s)]
			if !ok {
				name = string(s)
				if !validName(name) {
					return false
				}
				p.names[name] = name
			}
			pt.Name = name
		case "labels":
			if seen[1] {
				return false
			}
			seen[1] = true
			if !p.null() {
				var ok bool
				if labelsJSON, ok = p.labels(); !ok {
					return false
				}
			}
		case "value":
			if seen[2] {
				return false
			}
			seen[2] = true
			v, ok := p.number()
			if !ok {
				return false
			}
			pt.Value = v
		case "timestamp":
			if seen[3] {
				return false
			}
			seen[3] = true
			if !p.null() {
				s, ok := p.rawString()
				if !ok {
					return false
				}
				tsRaw, hasTS = s, true
			}
		default:
			return false
		}
		if p.lit(',') {
			continue
		}
		if !p.lit('}') {
			return false
		}
		break
	}
	if !seen[0] || !seen[2] {
		return false
	}
	pt.LabelsJSON = labelsJSON
	if !hasTS || len(tsRaw) == 0 {
		pt.Time = p.window.Now.UTC().Truncate(time.Microsecond)
		return true
	}
	ts, ok := p.times[string(tsRaw)]
	if !ok {
		s := string(tsRaw)
		var err error
		if ts, err = parseTimestamp(&s, p.window); err != nil {
			return false
		}
		p.times[s] = ts
	}
	pt.Time = ts
	return true
}

// labels parses a labels object and returns its canonical JSON.
func (p *fastParser) labels() (string, bool) {
	start := p.i
	if !p.lit('{') {
		return "", false
	}
	p.pairs = p.pairs[:0]
	if !p.lit('}') {
		for {
			k, ok := p.rawString()
			if !ok || !p.lit(':') {
				return "", false
			}
			v, ok := p.rawString()
			if !ok || len(p.pairs) == MaxLabels {
				return "", false
			}
			p.pairs = append(p.pairs, labelPair{k, v})
			if p.lit(',') {
				continue
			}
			if !p.lit('}') {
				return "", false
			}
			break
		}
	}
	raw := p.b[start:p.i]
	if c, ok := canonicalLabels.get(raw); ok {
		return c, true
	}
	sort.Slice(p.pairs, func(a, b int) bool { return string(p.pairs[a].k) < string(p.pairs[b].k) })
	var b strings.Builder
	b.WriteByte('{')
	for i, kv := range p.pairs {
		k, v := string(kv.k), string(kv.v)
		if i > 0 && k == string(p.pairs[i-1].k) {
			return "", false // repeated key: let encoding/json decide (last one wins)
		}
		if checkLabel(k, v) != nil {
			return "", false
		}
		if i > 0 {
			b.WriteByte(',')
		}
		writeJSONString(&b, k)
		b.WriteByte(':')
		writeJSONString(&b, v)
	}
	b.WriteByte('}')
	c := b.String()
	canonicalLabels.put(raw, c)
	return c, true
}

// number parses a JSON number (strict grammar) to a finite float64.
func (p *fastParser) number() (float64, bool) {
	p.ws()
	start := p.i
	b := p.b
	i := p.i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return 0, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return 0, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return 0, false
		}
	}
	v, err := strconv.ParseFloat(string(b[start:i]), 64)
	if err != nil { // out of range: the slow path explains
		return 0, false
	}
	p.i = i
	return v, true
}
