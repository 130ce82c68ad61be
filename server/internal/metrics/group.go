package metrics

import (
	"slices"
	"sort"
)

// Group is the series merged into one result series: each series alone, or
// all series sharing the values of the group_by keys.
type Group struct {
	Labels map[string]string
	// Canonical is Labels' canonical JSON: the order of groups in an answer.
	Canonical string
	SeriesIDs []int64
}

// GroupSeries merges series by the values of the groupBy keys (each series
// alone when groupBy is empty; a series without a key joins the group
// without that key), orders the groups by their canonical labels and keeps
// the first max. truncated says whether groups were dropped.
func GroupSeries(series []SeriesRef, groupBy []string, max int) (groups []Group, truncated bool) {
	byKey := map[string]int{}
	for _, s := range series {
		labels := s.Labels
		if len(groupBy) > 0 {
			labels = make(map[string]string, len(groupBy))
			for _, k := range groupBy {
				if v, ok := s.Labels[k]; ok {
					labels[k] = v
				}
			}
		}
		key := CanonicalLabels(labels)
		i, ok := byKey[key]
		if !ok {
			i = len(groups)
			byKey[key] = i
			groups = append(groups, Group{Labels: labels, Canonical: key})
		}
		groups[i].SeriesIDs = append(groups[i].SeriesIDs, s.ID)
	}
	for _, g := range groups {
		// A group's sum adds its series in this order: by id, so that the
		// last bits of an answer never depend on the order the database
		// returned the series in.
		slices.Sort(g.SeriesIDs)
	}
	sort.Slice(groups, func(i, j int) bool { return groups[i].Canonical < groups[j].Canonical })
	if len(groups) > max {
		return groups[:max], true
	}
	return groups, false
}
