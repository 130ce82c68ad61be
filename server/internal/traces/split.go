package traces

import (
	"encoding/json"
	"unicode/utf8"
)

// splitObject splits raw, a JSON value that encoding/json has already
// validated (a json.RawMessage it decoded), into its members, as
// json.Unmarshal into a map[string]json.RawMessage does (a repeated name: the
// last wins), in one pass instead of Unmarshal's two. ok is false when raw is
// not an object. Each value shares raw's bytes but cannot grow into its
// neighbour's (its capacity ends where it does).
func splitObject(raw []byte) (fields map[string]json.RawMessage, ok bool) {
	i := skipSpace(raw, 0)
	if i == len(raw) || raw[i] != '{' {
		return nil, false
	}
	fields = make(map[string]json.RawMessage, 8)
	for i = skipSpace(raw, i+1); i < len(raw) && raw[i] != '}'; {
		keyEnd := stringEnd(raw, i)
		name, ok := memberName(raw[i:keyEnd])
		if !ok {
			return nil, false
		}
		i = skipSpace(raw, skipSpace(raw, keyEnd)+1) // past the colon
		end := valueEnd(raw, i)
		fields[name] = raw[i:end:end]
		if i = skipSpace(raw, end); i < len(raw) && raw[i] == ',' {
			i = skipSpace(raw, i+1)
		}
	}
	return fields, true
}

// splitArray splits raw, an array (or null, or nothing) that encoding/json
// has already validated, into its elements, as json.Unmarshal into a
// []json.RawMessage does; ok is false for any other value.
func splitArray(raw []byte) (elems []json.RawMessage, ok bool) {
	i := skipSpace(raw, 0)
	if i == len(raw) || string(raw[i:]) == "null" {
		return nil, true
	}
	if raw[i] != '[' {
		return nil, false
	}
	elems = []json.RawMessage{}
	for i = skipSpace(raw, i+1); i < len(raw) && raw[i] != ']'; {
		end := valueEnd(raw, i)
		elems = append(elems, raw[i:end:end])
		if i = skipSpace(raw, end); i < len(raw) && raw[i] == ',' {
			i = skipSpace(raw, i+1)
		}
	}
	return elems, true
}

// memberName decodes a member name (a JSON string with its quotes): plain
// ASCII as is, anything else (escapes, UTF-8, which encoding/json checks and
// mends) through encoding/json.
func memberName(quoted []byte) (string, bool) {
	plain := true
	for _, c := range quoted[1 : len(quoted)-1] {
		if c == '\\' || c >= utf8.RuneSelf {
			plain = false
			break
		}
	}
	if plain {
		return string(quoted[1 : len(quoted)-1]), true
	}
	var name string
	return name, json.Unmarshal(quoted, &name) == nil
}

func skipSpace(raw []byte, i int) int {
	for i < len(raw) && (raw[i] == ' ' || raw[i] == '\t' || raw[i] == '\n' || raw[i] == '\r') {
		i++
	}
	return i
}

// stringEnd is the index after the string that starts (with its quote) at i.
func stringEnd(raw []byte, i int) int {
	for i++; i < len(raw); i++ {
		switch raw[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(raw)
}

// valueEnd is the index after the value that starts at i.
func valueEnd(raw []byte, i int) int {
	switch raw[i] {
	case '"':
		return stringEnd(raw, i)
	case '{', '[':
		depth := 0
		for ; i < len(raw); i++ {
			switch raw[i] {
			case '"':
				i = stringEnd(raw, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return len(raw)
	default: // a number, true, false or null
		for ; i < len(raw); i++ {
			switch raw[i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return i
			}
		}
		return len(raw)
	}
}
