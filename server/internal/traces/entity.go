// Package traces is the trace domain: Langfuse ingestion events and native
// batches become field-level upserts of traces, observations and scores, and
// upserts are merged with Langfuse's rules in a way that does not depend on
// the order in which they arrive. It has no SQL and no HTTP.
package traces

import (
	"bytes"
	"encoding/json"
	"sort"
	"time"
)

// Kind is the kind of entity an upsert targets.
type Kind string

// The entity kinds.
const (
	KindTrace       Kind = "trace"
	KindObservation Kind = "observation"
	KindScore       Kind = "score"
)

// Stamp orders writes of one field: the event time in microseconds, doubled,
// plus one for updates, so that at equal times a create applies before an
// update. Placeholder marks values the server filled in (a minimal trace made
// for an orphan observation): any real value replaces them.
type Stamp int64

// Placeholder is the stamp of server-filled values.
const Placeholder Stamp = -1

// NewStamp makes a stamp from an event time.
func NewStamp(t time.Time, update bool) Stamp {
	s := Stamp(t.UnixMicro() * 2)
	if update {
		s++
	}
	return s
}

// Upsert is one event's defined fields for one entity.
type Upsert struct {
	Kind   Kind
	ID     string
	Stamp  Stamp
	Fields map[string]json.RawMessage // only defined (non-null) fields, Langfuse names
}

// Entity is the merged state of a trace, observation or score: its fields
// (Langfuse names) and, per field, the stamp of the write that set it.
type Entity struct {
	Fields map[string]json.RawMessage `json:"fields"`
	Stamps map[string]Stamp           `json:"stamps"`
}

// rule says how a field merges.
type rule int

const (
	overwrite rule = iota // the write with the later stamp wins
	immutable             // the write with the earliest stamp wins ("never changes once set")
	earliest              // the smallest value wins (trace timestamp)
	deepMerge             // objects merge key by key, as if applied in stamp order (deepmerge.go)
	union                 // string arrays: union, sorted
)

var rules = map[Kind]map[string]rule{
	KindTrace: {
		"timestamp": earliest, "environment": immutable, "metadata": deepMerge, "tags": union,
	},
	KindObservation: {
		"traceId": immutable, "startTime": immutable, "environment": immutable, "type": immutable, "metadata": deepMerge,
	},
	KindScore: {
		"environment": immutable, "metadata": deepMerge,
	},
}

// Merge applies u to e. Applying the same upserts in any order gives the same entity.
func Merge(e *Entity, u Upsert) {
	if e.Fields == nil {
		// Sized for the first upsert, usually the only one: growing the
		// maps field by field cost more than the merge itself.
		e.Fields = make(map[string]json.RawMessage, len(u.Fields))
		e.Stamps = make(map[string]Stamp, len(u.Fields))
	}
	for name, v := range u.Fields {
		old, has := e.Fields[name]
		oldStamp := e.Stamps[name]
		if !has || (oldStamp == Placeholder && u.Stamp != Placeholder) {
			e.Fields[name], e.Stamps[name] = v, u.Stamp
			continue
		}
		if u.Stamp == Placeholder {
			continue // a real value is already there
		}
		switch rules[u.Kind][name] {
		case overwrite:
			if u.Stamp > oldStamp || (u.Stamp == oldStamp && bytes.Compare(v, old) > 0) {
				e.Fields[name], e.Stamps[name] = v, u.Stamp
			}
		case immutable:
			if u.Stamp < oldStamp || (u.Stamp == oldStamp && bytes.Compare(v, old) < 0) {
				e.Fields[name], e.Stamps[name] = v, u.Stamp
			}
		case earliest:
			tNew, tOld := parseTime(v), parseTime(old)
			sameTime := tNew.Equal(tOld)
			// One instant may be spelled two ways ("Z", "+00:00"): the smaller spelling breaks the last tie.
			if tNew.Before(tOld) || (sameTime && u.Stamp < oldStamp) || (sameTime && u.Stamp == oldStamp && bytes.Compare(v, old) < 0) {
				e.Fields[name], e.Stamps[name] = v, u.Stamp
			}
		case deepMerge:
			deepMergeField(e, name, v, u.Stamp)
		case union:
			e.Fields[name], e.Stamps[name] = unionStrings(old, v), max(oldStamp, u.Stamp)
		}
	}
}

// EntityOf is what merging u alone into an empty entity gives, without the
// copy: the entity shares u's fields, so neither may change afterwards.
func EntityOf(u Upsert) Entity {
	stamps := make(map[string]Stamp, len(u.Fields))
	for name := range u.Fields {
		stamps[name] = u.Stamp
	}
	return Entity{Fields: u.Fields, Stamps: stamps}
}

// WithoutRedundantPlaceholders drops from the upserts of one entity the
// placeholders whose every field another of them sets for real: a
// placeholder never replaces a real value, so those change nothing in any
// merge (a native batch's observations each bring one for the batch's trace).
func WithoutRedundantPlaceholders(list []Upsert) []Upsert {
	if len(list) < 2 {
		return list
	}
	real := map[string]bool{}
	for _, u := range list {
		if u.Stamp != Placeholder {
			for name := range u.Fields {
				real[name] = true
			}
		}
	}
	if len(real) == 0 {
		return list
	}
	out := list[:0:0]
	for _, u := range list {
		if u.Stamp == Placeholder && coveredBy(u.Fields, real) {
			continue
		}
		out = append(out, u)
	}
	return out
}

func coveredBy(fields map[string]json.RawMessage, names map[string]bool) bool {
	for name := range fields {
		if !names[name] {
			return false
		}
	}
	return true
}

func parseTime(raw json.RawMessage) time.Time {
	s, _ := DecodeString(raw)
	t, _ := time.Parse(time.RFC3339Nano, s)
	return t
}

func unionStrings(a, b json.RawMessage) json.RawMessage {
	var x, y []string
	_ = json.Unmarshal(a, &x)
	_ = json.Unmarshal(b, &y)
	set := map[string]bool{}
	for _, s := range append(x, y...) {
		set[s] = true
	}
	out := make([]string, 0, len(set))
	for s := range set {
		out = append(out, s)
	}
	sort.Strings(out)
	raw, _ := json.Marshal(out)
	return raw
}

// Clone returns a copy that merges do not share with e.
func (e Entity) Clone() Entity {
	out := Entity{Fields: make(map[string]json.RawMessage, len(e.Fields)), Stamps: make(map[string]Stamp, len(e.Stamps))}
	for k, v := range e.Fields {
		out.Fields[k] = v
	}
	for k, v := range e.Stamps {
		out.Stamps[k] = v
	}
	return out
}

// Equal says whether two entities hold the same fields with the same stamps.
func (e Entity) Equal(o Entity) bool {
	if len(e.Fields) != len(o.Fields) || len(e.Stamps) != len(o.Stamps) {
		return false
	}
	for k, v := range e.Fields {
		if w, ok := o.Fields[k]; !ok || !bytes.Equal(v, w) {
			return false
		}
	}
	for k, v := range e.Stamps {
		if w, ok := o.Stamps[k]; !ok || v != w {
			return false
		}
	}
	return true
}

// Str returns a string field; ok is false when it is unset.
func (e *Entity) Str(name string) (s string, ok bool) {
	if v, set := e.Fields[name]; set {
		if s, err := DecodeString(v); err == nil {
			return s, true
		}
	}
	return "", false
}

// Time returns a time field; ok is false when it is unset.
func (e *Entity) Time(name string) (t time.Time, ok bool) {
	if s, ok := e.Str(name); ok {
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// Numbers returns an object field of numbers (e.g. usageDetails), or nil.
func (e *Entity) Numbers(field string) Numbers {
	if v, ok := e.Fields[field]; ok {
		return decodeNumbers(v)
	}
	return nil
}

// Numbers is an object of numbers, such as usageDetails.
type Numbers map[string]float64

// Get returns the number under key; ok is false when there is none.
func (n Numbers) Get(key string) (f float64, ok bool) {
	f, ok = n[key]
	return f, ok
}

// Strings returns a string-array field.
func (e *Entity) Strings(name string) []string {
	var ss []string
	if v, ok := e.Fields[name]; ok {
		ss = decodeStrings(v)
	}
	if ss == nil {
		ss = []string{}
	}
	return ss
}

// Bool returns a boolean field (false when unset).
func (e *Entity) Bool(name string) bool {
	v, ok := e.Fields[name]
	if !ok || string(v) == "false" {
		return false
	}
	if string(v) == "true" {
		return true
	}
	var b bool
	_ = json.Unmarshal(v, &b)
	return b
}

// decodeStrings decodes v, valid JSON, as json.Unmarshal into a []string
// does (tags: a handful of plain strings each time).
func decodeStrings(v []byte) []string {
	if elems, ok := splitArray(v); ok {
		ss := make([]string, 0, len(elems))
		for _, raw := range elems {
			s, err := DecodeString(raw)
			if err != nil {
				ss = nil
				break
			}
			ss = append(ss, s)
		}
		if ss != nil {
			return ss
		}
	}
	var ss []string
	_ = json.Unmarshal(v, &ss)
	return ss
}
