package traces

import (
	"encoding/json"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/xtrace-dev/xtrace-operator/server/internal/errs"
)

// rename maps a usage or cost name onto its place in usageDetails or costDetails.
type rename struct{ from, to string }

// The names each usage form folds, in order: where two name the same place
// (input and promptTokens, totalCost and calculatedTotalCost) the later one
// wins, the same one on every request (ranging over a map picked either).
var (
	openAICounts      = []rename{{"promptTokens", "input"}, {"completionTokens", "output"}, {"totalTokens", "total"}}
	usageObjectCounts = append(slices.Clone(openAICounts), rename{"input", "input"}, rename{"output", "output"}, rename{"total", "total"})
	costNames         = []rename{{"inputCost", "input"}, {"outputCost", "output"}, {"totalCost", "total"}}
	fieldCostNames    = append([]rename{{"calculatedTotalCost", "total"}}, costNames...)
)

// usageDetailsAliases are the other names of usageDetails' places, ranked
// below the place's own name (3).
var usageDetailsAliases = map[string]struct {
	place string
	rank  int
}{
	"input_tokens": {"input", 2}, "output_tokens": {"output", 2},
	"prompt_tokens": {"input", 1}, "completion_tokens": {"output", 1}, "total_tokens": {"total", 1},
}

// normalizeUsage folds the usage forms into usageDetails {input, output, total, …}
// and costDetails {input, output, total}; empty objects are ignored; a missing total is computed.
func normalizeUsage(fields map[string]json.RawMessage) error {
	details := map[string]float64{}
	costs := map[string]float64{}
	num := func(m map[string]json.RawMessage, key string) (float64, bool) {
		if v, ok := m[key]; ok && string(v) != "null" { // a null is no count
			return number(v)
		}
		return 0, false
	}
	if raw, ok := fields["usage"]; ok {
		var u map[string]json.RawMessage
		if json.Unmarshal(raw, &u) != nil {
			return errs.InvalidField("usage", "must be an object")
		}
		for _, r := range usageObjectCounts {
			if f, ok := num(u, r.from); ok {
				details[r.to] = f
			}
		}
		for _, r := range costNames {
			if f, ok := num(u, r.from); ok {
				costs[r.to] = f
			}
		}
		delete(fields, "usage")
	}
	for _, r := range openAICounts {
		if f, ok := num(fields, r.from); ok {
			details[r.to] = f
			delete(fields, r.from)
		}
	}
	if raw, ok := fields["usageDetails"]; ok {
		var u map[string]json.RawMessage
		if json.Unmarshal(raw, &u) != nil {
			return errs.InvalidField("usageDetails", "must be an object of numbers")
		}
		// In key order, so that the error names the same key every time. Of
		// several names of one place the strongest wins whatever the order:
		// the place's own name, then the current *_tokens name, then the
		// older prompt_/completion_ one (as for OTLP's gen_ai.usage.*). A
		// null is no count (as a null field is no value).
		rankOf := map[string]int{}
		for _, k := range slices.Sorted(maps.Keys(u)) {
			var f float64
			switch {
			case string(u[k]) == "null":
				continue
			case json.Unmarshal(u[k], &f) == nil:
			case k == "prompt_tokens_details" || k == "completion_tokens_details" || k == "input_tokens_details" || k == "output_tokens_details":
				continue // nested details of a raw OpenAI usage object
			default:
				return errs.InvalidField("usageDetails."+k, "must be a number")
			}
			place, rank := k, 3
			if a, ok := usageDetailsAliases[k]; ok {
				place, rank = a.place, a.rank
			}
			if r, set := rankOf[place]; set && r > rank {
				continue
			}
			details[place], rankOf[place] = f, rank
		}
	}
	if raw, ok := fields["costDetails"]; ok {
		var c map[string]*float64 // nil: a null, no amount
		if json.Unmarshal(raw, &c) != nil {
			return errs.InvalidField("costDetails", "must be an object of numbers")
		}
		for k, v := range c {
			if v != nil {
				costs[k] = *v
			}
		}
	}
	for _, r := range fieldCostNames {
		if f, ok := num(fields, r.from); ok {
			costs[r.to] = f
			delete(fields, r.from)
		}
	}
	delete(fields, "usageDetails")
	delete(fields, "costDetails")
	if err := checkAmounts("usageDetails", details, 0); err != nil {
		return err
	}
	if err := checkAmounts("costDetails", costs, -MaxAmount); err != nil {
		return err
	}
	if len(details) > 0 {
		if _, ok := details["total"]; !ok {
			sum := 0.0
			for _, k := range slices.Sorted(maps.Keys(details)) { // one order: the same last bits every time
				if !strings.Contains(k, "_") || k == "input" || k == "output" {
					sum += details[k]
				}
			}
			details["total"] = sum
		}
		fields["usageDetails"] = numbersJSON(details)
	}
	if len(costs) > 0 {
		if _, ok := costs["total"]; !ok {
			costs["total"] = costs["input"] + costs["output"]
		}
		fields["costDetails"] = numbersJSON(costs)
	}
	return nil
}

// MaxAmount bounds usage counts and costs: far above any real request, and
// small enough that totals stay exact in float64 and finite.
const MaxAmount = 1e15

// checkAmounts rejects values that are not finite numbers in [min, MaxAmount].
func checkAmounts(field string, m map[string]float64, min float64) error {
	bad := func(v float64) bool { return math.IsNaN(v) || v < min || v > MaxAmount }
	anyBad := false
	for _, v := range m {
		anyBad = anyBad || bad(v)
	}
	if !anyBad {
		return nil
	}
	for _, k := range slices.Sorted(maps.Keys(m)) { // the first bad one by name, every time
		v := m[k]
		if bad(v) {
			if min == 0 {
				return errs.InvalidField(field+"."+k, "%v is not a count from 0 to %g", v, MaxAmount)
			}
			return errs.InvalidField(field+"."+k, "%v is not an amount from %g to %g", v, min, MaxAmount)
		}
	}
	return nil
}

// number decodes a JSON number as json.Unmarshal into a float64 does: a
// plain literal through strconv directly (encoding/json does the same after
// its reflection), anything else through encoding/json.
func number(v []byte) (float64, bool) {
	plain := len(v) > 0 && (v[0] == '-' || v[0] >= '0' && v[0] <= '9')
	for i := 0; plain && i < len(v); i++ {
		c := v[i]
		plain = c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E'
	}
	if plain {
		f, err := strconv.ParseFloat(string(v), 64)
		return f, err == nil
	}
	var f float64
	return f, json.Unmarshal(v, &f) == nil
}

// decodeNumbers decodes v, valid JSON, as an object of numbers (usageDetails, costDetails) as
// json.Unmarshal into a map[string]float64 does; nil when it is not one.
func decodeNumbers(v []byte) map[string]float64 {
	if members, ok := splitObject(v); ok {
		m := make(map[string]float64, len(members))
		for name, raw := range members {
			f, ok := number(raw)
			if !ok {
				m = nil
				break
			}
			m[name] = f
		}
		if m != nil {
			return m
		}
	}
	var m map[string]float64
	if json.Unmarshal(v, &m) != nil {
		return nil
	}
	return m
}

// numbersJSON is json.Marshal of m (m's numbers are finite: checkAmounts),
// written directly: keys in order, numbers as encoding/json spells them.
func numbersJSON(m map[string]float64) json.RawMessage {
	b := make([]byte, 0, 16*len(m)+2)
	b = append(b, '{')
	for i, k := range slices.Sorted(maps.Keys(m)) {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendName(b, k)
		b = appendFloat(b, m[k])
	}
	return append(b, '}')
}

// AppendName appends "k": as encoding/json writes an object's key (the
// rows' fields and stamps are written with it too).
func AppendName(b []byte, k string) []byte {
	plain := true
	for i := 0; plain && i < len(k); i++ {
		c := k[i]
		plain = c >= 0x20 && c < utf8.RuneSelf && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	if plain {
		b = append(b, '"')
		b = append(b, k...)
		return append(b, '"', ':')
	}
	q, _ := json.Marshal(k)
	return append(append(b, q...), ':')
}

// appendFloat appends f as encoding/json writes a float64.
func appendFloat(b []byte, f float64) []byte {
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if n := len(b); format == 'e' && n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
		b[n-2] = b[n-1] // e-07 is written e-7
		b = b[:n-1]
	}
	return b
}
