package traces

import (
	"encoding/json"
	"maps"
	"math"
	"slices"
	"strings"

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
			var f float64
			if json.Unmarshal(v, &f) == nil {
				return f, true
			}
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
		fields["usageDetails"], _ = json.Marshal(details)
	}
	if len(costs) > 0 {
		if _, ok := costs["total"]; !ok {
			costs["total"] = costs["input"] + costs["output"]
		}
		fields["costDetails"], _ = json.Marshal(costs)
	}
	return nil
}

// MaxAmount bounds usage counts and costs: far above any real request, and
// small enough that totals stay exact in float64 and finite.
const MaxAmount = 1e15

// checkAmounts rejects values that are not finite numbers in [min, MaxAmount].
func checkAmounts(field string, m map[string]float64, min float64) error {
	for _, k := range slices.Sorted(maps.Keys(m)) {
		v := m[k]
		if math.IsNaN(v) || v < min || v > MaxAmount {
			if min == 0 {
				return errs.InvalidField(field+"."+k, "%v is not a count from 0 to %g", v, MaxAmount)
			}
			return errs.InvalidField(field+"."+k, "%v is not an amount from %g to %g", v, min, MaxAmount)
		}
	}
	return nil
}
