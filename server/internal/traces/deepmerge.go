package traces

import (
	"bytes"
	"encoding/json"
	"maps"
	"math"
	"slices"
	"strings"
)

// A deep-merged field (metadata) must come out as if its writes had been
// applied in stamp order, each deep-merging its object over the value so far,
// whatever order they arrive in. One stamp for the whole field is not enough:
// a late-arriving older write must still set the keys no newer write touched.
// So the field is held as a tree with a stamp per node, and the stamps of
// nodes that differ from their parent's are stored beside the field's own in
// Entity.Stamps, under "metadata/<key>/<key>" (keys escaped as in a JSON
// pointer). An entity written once stores no extra stamps.
//
// The rules, for a write of stamp s at a node of stamp t:
//   - a value over a value: the later stamp wins (ties: the greater bytes);
//   - an object over a value: the object replaces it when s >= t, and the
//     node remembers t as its floor: in time order, everything in this subtree
//     written before t was wiped by that value, so such writes are dropped
//     if they come later (stored as "<path>/~f");
//   - a value over an object: the value replaces it when s > t; otherwise it
//     raises the floor to s and removes what was written before s;
//   - an object over an object: key by key.

// noFloor is the floor of a node no value has wiped.
const noFloor = Stamp(math.MinInt64)

// floorKey is the path segment of a floor in Entity.Stamps; escaped keys
// never take this form.
const floorKey = "~f"

type jsonNode struct {
	leaf  json.RawMessage      // the value, when the node is not an object
	kids  map[string]*jsonNode // the members, when it is (non-nil)
	stamp Stamp                // the latest write that set this node or any below it
	floor Stamp                // writes below this stamp in the subtree came before a value replaced it
}

// newNode holds v as written at stamp s.
func newNode(v json.RawMessage, s Stamp) *jsonNode {
	var members map[string]json.RawMessage
	if t := bytes.TrimLeft(v, " \t\r\n"); len(t) > 0 && t[0] == '{' && json.Unmarshal(v, &members) == nil {
		n := &jsonNode{kids: make(map[string]*jsonNode, len(members)), stamp: s, floor: noFloor}
		for k, kv := range members {
			n.kids[k] = newNode(kv, s)
		}
		return n
	}
	return &jsonNode{leaf: v, stamp: s, floor: noFloor}
}

// absorb merges in (one write: every node at one stamp) into n. above is the
// highest floor of n's ancestors.
func (n *jsonNode) absorb(in *jsonNode, above Stamp) {
	s := in.stamp
	if s < above {
		return // wiped, in time order, by a value written above n
	}
	switch {
	case n.kids == nil && in.kids == nil:
		if s > n.stamp || (s == n.stamp && bytes.Compare(in.leaf, n.leaf) > 0) {
			n.leaf, n.stamp = in.leaf, s
		}
	case n.kids == nil: // an object over a value
		if s >= n.stamp {
			wiped := n.stamp
			*n = *in
			if wiped > above {
				n.floor = wiped
			}
		}
	case in.kids == nil: // a value over an object
		if s > n.stamp {
			*n = *in
		} else if s > n.floor && s > above {
			n.floor = s
			n.prune(s)
		}
	default:
		n.stamp = max(n.stamp, s)
		below := max(above, n.floor)
		for k, kid := range in.kids {
			if old, ok := n.kids[k]; ok {
				old.absorb(kid, below)
			} else if s >= below {
				n.kids[k] = kid
			}
		}
	}
}

// prune removes what was written before f below n, and floors f makes moot.
func (n *jsonNode) prune(f Stamp) {
	for k, kid := range n.kids {
		if kid.stamp < f {
			delete(n.kids, k)
			continue
		}
		if kid.floor <= f {
			kid.floor = noFloor
		}
		kid.prune(f)
	}
}

// value is the node as JSON, members in key order.
func (n *jsonNode) value() json.RawMessage {
	if n.kids == nil {
		return n.leaf
	}
	b := []byte{'{'}
	for i, k := range slices.Sorted(maps.Keys(n.kids)) {
		if i > 0 {
			b = append(b, ',')
		}
		key, _ := json.Marshal(k)
		b = append(append(append(b, key...), ':'), n.kids[k].value()...)
	}
	return append(b, '}')
}

var pathEscaper, pathUnescaper = strings.NewReplacer("~", "~0", "/", "~1"), strings.NewReplacer("~1", "/", "~0", "~")

// loadTree rebuilds field name's tree from its value and stamps.
func loadTree(name string, v json.RawMessage, stamps map[string]Stamp) *jsonNode {
	root := newNode(v, stamps[name])
	type entry struct {
		path  []string
		stamp Stamp
	}
	var entries []entry
	for k, s := range stamps {
		if rest, ok := strings.CutPrefix(k, name+"/"); ok {
			entries = append(entries, entry{strings.Split(rest, "/"), s})
		}
	}
	// Parents first: a node's stamp is inherited by every node below it
	// that has none of its own.
	slices.SortFunc(entries, func(a, b entry) int { return len(a.path) - len(b.path) })
	for _, e := range entries {
		last := len(e.path) - 1
		isFloor := e.path[last] == floorKey
		if isFloor {
			e.path = e.path[:last]
		}
		n := root
		for _, seg := range e.path {
			if n = n.kids[pathUnescaper.Replace(seg)]; n == nil {
				break // stale: nothing to attach it to
			}
		}
		switch {
		case n == nil:
		case isFloor:
			n.floor = e.stamp
		default:
			n.setStamp(e.stamp)
		}
	}
	return root
}

func (n *jsonNode) setStamp(s Stamp) {
	n.stamp = s
	for _, kid := range n.kids {
		kid.setStamp(s)
	}
}

// storeTree writes the tree of field name into e: its value and its stamps.
func storeTree(e *Entity, name string, root *jsonNode) {
	for k := range e.Stamps {
		if strings.HasPrefix(k, name+"/") {
			delete(e.Stamps, k)
		}
	}
	e.Fields[name], e.Stamps[name] = root.value(), root.stamp
	root.storeStamps(name, root.stamp, e.Stamps)
}

func (n *jsonNode) storeStamps(path string, parent Stamp, stamps map[string]Stamp) {
	if n.stamp != parent {
		stamps[path] = n.stamp
	}
	if n.floor != noFloor {
		stamps[path+"/"+floorKey] = n.floor
	}
	for k, kid := range n.kids {
		kid.storeStamps(path+"/"+pathEscaper.Replace(k), n.stamp, stamps)
	}
}

// deepMergeField merges v, written at stamp s, into the deep-merged field name of e.
func deepMergeField(e *Entity, name string, v json.RawMessage, s Stamp) {
	root := loadTree(name, e.Fields[name], e.Stamps)
	root.absorb(newNode(v, s), noFloor)
	storeTree(e, name, root)
}
