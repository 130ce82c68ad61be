package devproc

import (
	"os"
	"testing"
	"time"
)

// TestReadProcStat reads this test process's parent and a CPU time that
// grows with work done.
func TestReadProcStat(t *testing.T) {
	before, err := ReadProcStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if before.PPID != os.Getppid() {
		t.Fatalf("parent %d, want %d", before.PPID, os.Getppid())
	}
	after, deadline := before, time.Now().Add(10*time.Second)
	for x := 0; after.CPU <= before.CPU; x++ { // busy until the kernel counts a tick (10 ms)
		if time.Now().After(deadline) {
			t.Fatalf("CPU time stayed at %v s through 10 s of work", before.CPU)
		}
		if x%1_000_000 == 0 {
			if after, err = ReadProcStat(os.Getpid()); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := ReadProcStat(-1); err == nil {
		t.Fatal("a process that cannot exist was read")
	}
}
