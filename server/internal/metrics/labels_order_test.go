package metrics

import (
	"strings"
	"testing"
)

func TestBadLabelsAreNamedInOrder(t *testing.T) {
	for range 20 {
		_, err := parseLabels([]byte(`{"zone":5,"1a":"x","b":7}`))
		if err == nil || !strings.Contains(err.Error(), `"1a"`) {
			t.Fatalf("error %v, want one naming the label 1a (the first bad one by name)", err)
		}
	}
}
