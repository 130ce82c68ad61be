package store

import "testing"

// TestEveryExclusiveLockHasAName: exclusive sections are logged by lock name
// (the multi-process test reads them); a job added to RunExclusive needs one.
func TestEveryExclusiveLockHasAName(t *testing.T) {
	for job, id := range jobLocks {
		if lockNames[id] == "" || job.String() == "" {
			t.Errorf("job %d: lock %#x has no name in lockNames", job, id)
		}
	}
	for _, id := range []lockID{lockMigrations, lockPartitions, lockRetention} {
		if lockNames[id] == "" {
			t.Errorf("lock %#x has no name in lockNames", id)
		}
	}
}
