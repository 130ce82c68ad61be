package metrics

import (
	"fmt"
	"testing"
)

func TestGroupSeries(t *testing.T) {
	series := []SeriesRef{
		{ID: 1, Labels: map[string]string{"node_id": "n2", "gpu_index": "0"}},
		{ID: 3, Labels: map[string]string{"node_id": "n1", "gpu_index": "0"}},
		{ID: 2, Labels: map[string]string{"node_id": "n1", "gpu_index": "1"}}, // a group's ids come sorted whatever the order found
		{ID: 4, Labels: map[string]string{"gpu_index": "0"}},                  // no node_id: joins the group without it
	}
	// Groups are ordered by their canonical JSON, byte by byte (so "0","node… sorts before "0"}).

	cases := []struct {
		groupBy   []string
		max       int
		want      string
		truncated bool
	}{
		{nil, 10, `[{"gpu_index":"0","node_id":"n1"}:[3] {"gpu_index":"0","node_id":"n2"}:[1] {"gpu_index":"0"}:[4] {"gpu_index":"1","node_id":"n1"}:[2]]`, false},
		{[]string{"node_id"}, 10, `[{"node_id":"n1"}:[2 3] {"node_id":"n2"}:[1] {}:[4]]`, false},
		{[]string{"node_id"}, 2, `[{"node_id":"n1"}:[2 3] {"node_id":"n2"}:[1]]`, true},
		{[]string{"node_id"}, 3, `[{"node_id":"n1"}:[2 3] {"node_id":"n2"}:[1] {}:[4]]`, false},
		{[]string{"gpu_index", "node_id"}, 10, `[{"gpu_index":"0","node_id":"n1"}:[3] {"gpu_index":"0","node_id":"n2"}:[1] {"gpu_index":"0"}:[4] {"gpu_index":"1","node_id":"n1"}:[2]]`, false},
	}
	for _, c := range cases {
		groups, truncated := GroupSeries(series, c.groupBy, c.max)
		var got []string
		for _, g := range groups {
			got = append(got, fmt.Sprintf("%s:%v", g.Canonical, g.SeriesIDs))
		}
		if fmt.Sprint(got) != c.want || truncated != c.truncated {
			t.Errorf("GroupSeries(%v, %d) = %v truncated=%v\n want %s truncated=%v", c.groupBy, c.max, got, truncated, c.want, c.truncated)
		}
	}
}
