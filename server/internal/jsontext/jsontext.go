// Package jsontext finds and replaces the text that PostgreSQL cannot store
// in text or jsonb columns: NUL characters, lone UTF-16 surrogates and
// invalid UTF-8. Clients do send such text (LLM output contains it); each
// route decides whether to replace it or to reject the request.
package jsontext

import (
	"bytes"
	"encoding/json"
	"strings"
	"unicode/utf8"
)

// replacement is U+FFFD as a JSON escape.
const replacement = `\ufffd`

// Sanitize returns raw (JSON) with NUL escapes, lone surrogate escapes and
// invalid UTF-8 bytes replaced by U+FFFD, the Unicode replacement character.
func Sanitize(raw json.RawMessage) json.RawMessage {
	out, _ := scan(raw, true)
	return out
}

// Problem says what in raw (JSON) PostgreSQL could not store, or "" when nothing.
func Problem(raw []byte) string {
	_, problem := scan(raw, false)
	return problem
}

// StringProblem is Problem for a decoded Go string.
func StringProblem(s string) string {
	switch {
	case !utf8.ValidString(s):
		return problemUTF8
	case strings.ContainsRune(s, 0):
		return problemNUL
	}
	return ""
}

const (
	problemNUL       = "contains a NUL character"
	problemSurrogate = "contains a lone UTF-16 surrogate"
	problemUTF8      = "is not valid UTF-8"
)

// scan walks raw; with fix it returns the sanitised copy, else the first problem.
func scan(raw []byte, fix bool) (json.RawMessage, string) {
	if utf8.Valid(raw) && !bytes.Contains(raw, []byte(`\u`)) {
		return raw, "" // the common case: nothing to look at
	}
	out := make([]byte, 0, len(raw)+8)
	inString := false
	for i := 0; i < len(raw); {
		c := raw[i]
		switch {
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRune(raw[i:])
			if r == utf8.RuneError && size <= 1 {
				if !fix {
					return nil, problemUTF8
				}
				out = append(out, replacement...)
				i++
				continue
			}
			out = append(out, raw[i:i+size]...)
			i += size
		case c == '"':
			inString = !inString
			out = append(out, c)
			i++
		case inString && c == '\\' && i+1 < len(raw):
			if raw[i+1] != 'u' || i+6 > len(raw) {
				out = append(out, raw[i], raw[i+1]) // \" \\ \n …: two bytes, kept
				i += 2
				continue
			}
			unit, ok := hex4(raw[i+2 : i+6])
			switch {
			case !ok:
				out = append(out, raw[i:i+6]...)
				i += 6
			case unit == 0:
				if !fix {
					return nil, problemNUL
				}
				out = append(out, replacement...)
				i += 6
			case unit >= 0xD800 && unit <= 0xDBFF: // high surrogate: valid only before a low one
				if i+12 <= len(raw) && raw[i+6] == '\\' && raw[i+7] == 'u' {
					if low, ok := hex4(raw[i+8 : i+12]); ok && low >= 0xDC00 && low <= 0xDFFF {
						out = append(out, raw[i:i+12]...)
						i += 12
						continue
					}
				}
				if !fix {
					return nil, problemSurrogate
				}
				out = append(out, replacement...)
				i += 6
			case unit >= 0xDC00 && unit <= 0xDFFF: // a low surrogate on its own
				if !fix {
					return nil, problemSurrogate
				}
				out = append(out, replacement...)
				i += 6
			default:
				out = append(out, raw[i:i+6]...)
				i += 6
			}
		default:
			out = append(out, c)
			i++
		}
	}
	if !fix {
		return nil, ""
	}
	return out, ""
}

func hex4(b []byte) (uint16, bool) {
	var v uint16
	for _, c := range b {
		v <<= 4
		switch {
		case c >= '0' && c <= '9':
			v |= uint16(c - '0')
		case c >= 'a' && c <= 'f':
			v |= uint16(c-'a') + 10
		case c >= 'A' && c <= 'F':
			v |= uint16(c-'A') + 10
		default:
			return 0, false
		}
	}
	return v, true
}
