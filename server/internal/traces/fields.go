package traces

import (
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/xtrace-dev/xtrace-operator/server/internal/errs"
	"github.com/xtrace-dev/xtrace-operator/server/internal/jsontext"
)

// PostgreSQL cannot store NUL characters, lone UTF-16 surrogates or invalid
// UTF-8 in text or jsonb, and LLM output does contain them. Rather than fail
// an event (or, worse, its whole batch), the values of every field are
// sanitised: each such character becomes U+FFFD, the Unicode replacement
// character. Ids are the exception: an id with NUL cannot be stored
// faithfully, so such an event is rejected on its own (see requireID).

// cleanFields applies the rules every stored field obeys, whichever route it
// came through: nesting at most maxDepth levels, and text PostgreSQL can store.
// A field's name must not contain "/": the stamps of a deep-merged field's
// members are kept beside the fields' own under "<field>/<key>", and a field
// named "metadata/a" would pass for one. Of several bad fields, the error
// names the first by name.
func cleanFields(fields map[string]json.RawMessage) error {
	bad, problem := "", ""
	for name, v := range fields {
		p := ""
		switch {
		case strings.Contains(name, "/"):
			p = `a field name must not contain "/"`
		case checkDepth(v) != nil:
			p = fmt.Sprintf("nested deeper than %d levels", maxDepth)
		default:
			fields[name] = jsontext.Sanitize(v)
			continue
		}
		if bad == "" || name < bad {
			bad, problem = name, p
		}
	}
	if bad != "" {
		return errs.InvalidField(bad, "%s", problem)
	}
	return nil
}

// maxDepth bounds JSON nesting of input/output/metadata so that deep bodies
// cannot exhaust the stack or the database's jsonb limits.
const maxDepth = 64

// bodyFields decodes an event body (a value encoding/json has validated)
// into its defined fields.
func bodyFields(raw json.RawMessage) (map[string]json.RawMessage, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, errs.InvalidField("body", "required")
	}
	if err := checkDepth(raw); err != nil {
		return nil, err
	}
	fields, ok := splitObject(raw) // raw was validated by the decoder that cut it out
	if !ok {
		return nil, errs.InvalidField("body", "must be an object")
	}
	for k, v := range fields {
		if string(v) == "null" {
			delete(fields, k) // undefined: never overwrites
		}
	}
	return fields, nil
}

func checkDepth(raw []byte) error {
	depth, inString, escaped := 0, false, false
	for _, c := range raw {
		switch {
		case escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case c == '"':
			inString = !inString
		case inString:
		case c == '{' || c == '[':
			if depth++; depth > maxDepth {
				return errs.InvalidField("body", "nested deeper than %d levels", maxDepth)
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return nil
}

func trunc(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// fieldSpec validates and normalises known fields; unknown fields are kept as they are.
type fieldSpec func(name string, v json.RawMessage) (json.RawMessage, error)

// DecodeString decodes a JSON string. Most strings of an event (ids, names,
// times) are plain ASCII without escapes, and those are sliced out of the
// JSON directly: a gateway request has about twenty, each decoded more than
// once on its way to a row, and encoding/json's reflection showed in every
// profile of trace ingest. Anything else is decoded by encoding/json, so the
// result and the error are the same for every input.
func DecodeString(v []byte) (string, error) {
	if plainString(v) {
		return string(v[1 : len(v)-1]), nil
	}
	var s string
	err := json.Unmarshal(v, &s)
	return s, err
}

// plainString says whether v is a JSON string of plain ASCII without escapes:
// its value is v without the quotes.
func plainString(v []byte) bool {
	n := len(v)
	if n < 2 || v[0] != '"' || v[n-1] != '"' {
		return false
	}
	for _, c := range v[1 : n-1] {
		if c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// stringLen is the length in bytes of the JSON string v decodes to; ok is
// false when v is not a string. Validation needs no copy of the string.
func stringLen(v []byte) (n int, ok bool) {
	if plainString(v) {
		return len(v) - 2, true
	}
	s, err := DecodeString(v)
	return len(s), err == nil
}

func asTime(name string, v json.RawMessage) (json.RawMessage, error) {
	s, err := DecodeString(v)
	if err != nil {
		return nil, errs.InvalidField(name, "must be an ISO 8601 string")
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return nil, errs.InvalidField(name, "%q is not ISO 8601 with an offset", trunc(s))
	}
	b := make([]byte, 0, len(`"2006-01-02T15:04:05.999999999Z"`))
	b = t.UTC().AppendFormat(append(b, '"'), time.RFC3339Nano)
	return append(b, '"'), nil
}

// typed accepts a field whose JSON decodes as T; what names T in the error ("a string").
func typed[T any](what string) fieldSpec {
	return func(name string, v json.RawMessage) (json.RawMessage, error) {
		var x T
		if err := json.Unmarshal(v, &x); err != nil {
			return nil, errs.InvalidField(name, "must be %s", what)
		}
		return v, nil
	}
}

// asString accepts a string.
func asString(name string, v json.RawMessage) (json.RawMessage, error) {
	if _, ok := stringLen(v); !ok {
		return nil, errs.InvalidField(name, "must be a string")
	}
	return v, nil
}

var (
	asBool   = typed[bool]("a boolean")
	asObject = typed[map[string]json.RawMessage]("an object")
)

// Text that is indexed (names, user and session ids, versions, tags) is
// bounded: a PostgreSQL btree entry holds at most about 2.7 kB.
const (
	MaxIndexedBytes = 1000
	MaxTags         = 100
)

// asIndexed accepts a string of at most MaxIndexedBytes.
func asIndexed(name string, v json.RawMessage) (json.RawMessage, error) {
	n, ok := stringLen(v)
	if !ok {
		return nil, errs.InvalidField(name, "must be a string")
	}
	if n > MaxIndexedBytes {
		return nil, errs.InvalidField(name, "%d bytes long, at most %d", n, MaxIndexedBytes)
	}
	return v, nil
}

// asTags accepts at most MaxTags strings of at most MaxIndexedBytes each.
func asTags(name string, v json.RawMessage) (json.RawMessage, error) {
	var tags []string
	if err := json.Unmarshal(v, &tags); err != nil {
		return nil, errs.InvalidField(name, "must be an array of strings")
	}
	if len(tags) > MaxTags {
		return nil, errs.InvalidField(name, "%d tags, at most %d", len(tags), MaxTags)
	}
	for i, t := range tags {
		if len(t) > MaxIndexedBytes {
			return nil, errs.InvalidField(fmt.Sprintf("%s[%d]", name, i), "%d bytes long, at most %d", len(t), MaxIndexedBytes)
		}
	}
	return v, nil
}

func asEnvironment(_ string, v json.RawMessage) (json.RawMessage, error) {
	s, _ := DecodeString(v)
	out, _ := json.Marshal(NormalizeEnvironment(s))
	return out, nil
}

var environmentPattern = regexp.MustCompile(`^[a-z0-9_-]{1,40}$`)

// NormalizeEnvironment applies Langfuse's rule: lower-case, [a-z0-9_-]{1,40},
// no "langfuse" prefix; anything else is "default".
func NormalizeEnvironment(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	if !environmentPattern.MatchString(s) || strings.HasPrefix(s, "langfuse") {
		return "default"
	}
	return s
}

// fieldSpecs are a kind's known fields with their specs, in name order.
type fieldSpecs []namedSpec

type namedSpec struct {
	name string
	spec fieldSpec
}

// specsOf orders specs by field name: an event with two bad fields is
// rejected naming the same one every time.
func specsOf(specs map[string]fieldSpec) fieldSpecs {
	var out fieldSpecs
	for _, name := range slices.Sorted(maps.Keys(specs)) {
		out = append(out, namedSpec{name, specs[name]})
	}
	return out
}

func validate(fields map[string]json.RawMessage, specs fieldSpecs) error {
	for _, s := range specs {
		if v, ok := fields[s.name]; ok {
			out, err := s.spec(s.name, v)
			if err != nil {
				return err
			}
			fields[s.name] = out
		}
	}
	return nil
}

func requireID(fields map[string]json.RawMessage, name string) (string, error) {
	raw, ok := fields[name]
	if !ok {
		return "", errs.InvalidField(name, "required")
	}
	id, err := DecodeString(raw)
	if err != nil || id == "" {
		return "", errs.InvalidField(name, "must be a non-empty string")
	}
	if strings.ContainsRune(id, 0) {
		return "", errs.InvalidField(name, "must not contain NUL characters")
	}
	if utf8.RuneCountInString(id) > MaxIDLength || len(id) > MaxIndexedBytes {
		return "", errs.InvalidField(name, "longer than %d characters (or %d bytes)", MaxIDLength, MaxIndexedBytes)
	}
	return id, nil
}

func optionalID(fields map[string]json.RawMessage, name string) (string, error) {
	if _, ok := fields[name]; !ok {
		return "", nil
	}
	return requireID(fields, name)
}

func asAny(_ string, v json.RawMessage) (json.RawMessage, error) { return v, nil }

func asLevel(name string, v json.RawMessage) (json.RawMessage, error) {
	s, err := DecodeString(v)
	if err != nil {
		return nil, errs.InvalidField(name, "must be a string")
	}
	switch strings.ToUpper(s) {
	case "DEBUG", "DEFAULT", "WARNING", "ERROR":
		return json.RawMessage(`"` + strings.ToUpper(s) + `"`), nil
	}
	return nil, errs.InvalidField(name, "%q is not one of DEBUG, DEFAULT, WARNING, ERROR", trunc(s))
}

func asType(name string, v json.RawMessage) (json.RawMessage, error) {
	s, err := DecodeString(v)
	if err != nil || !validObservationTypes[strings.ToUpper(s)] {
		return nil, errs.InvalidField(name, "%s is not an observation type (SPAN, GENERATION, EVENT, AGENT, TOOL, CHAIN, RETRIEVER, EVALUATOR, EMBEDDING, GUARDRAIL)", trunc(string(v)))
	}
	return json.RawMessage(`"` + strings.ToUpper(s) + `"`), nil
}

// bodyError renames a problem with a whole body ("body: must be an object")
// after the element it came from ("trace: must be an object").
func bodyError(err error, element string) error {
	if e, ok := errs.As(err); ok && e.Kind == errs.Invalid && e.Field == "body" {
		out := *e
		out.Field = element
		return &out
	}
	return errs.WithField(err, element)
}
