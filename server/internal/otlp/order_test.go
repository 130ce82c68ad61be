package otlp

import "testing"

// Where two attributes fill the same place, the same one wins on every span
// (Go ranges over maps in a different order each time).
func TestTwoNamesForOnePlaceGiveOneResult(t *testing.T) {
	for range 20 {
		a := &attrs{m: map[string]any{"gen_ai.usage.prompt_tokens": int64(20), "gen_ai.usage.input_tokens": int64(10),
			"gen_ai.usage.completion_tokens": int64(7), "gen_ai.usage.output_tokens": int64(5)}, used: map[string]bool{}}
		if got := genAIUsage(a); got["input"] != 10 || got["output"] != 5 {
			t.Fatalf("usage %v, want input 10 and output 5 (the current names win)", got)
		}
		a = &attrs{m: map[string]any{"gen_ai.prompt.0.content": "A", "gen_ai.prompt.00.content": "B"}, used: map[string]bool{}}
		if got, want := string(a.indexed("gen_ai.prompt.")), `[{"content":"A"}]`; got != want {
			t.Fatalf("indexed = %s, want %s", got, want)
		}
	}
}
