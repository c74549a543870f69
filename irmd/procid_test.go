package irmd

import (
	"os"
	"os/exec"
	"testing"
)

// TestBoundProcessDiesWithIt: a process bound to a name (by bind
// process or by listening) stays bound while it runs, and the binding
// is forgotten once it is gone, so a later process given the same pid
// (another user's, perhaps) inherits nothing. A pid reused while the
// binding is still recorded is told apart by its start time.
func TestBoundProcessDiesWithIt(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	n := &nameRec{name: "srv", pids: map[int]uint64{}}
	if err := bindPIDLocked(n, pid); err != nil {
		t.Fatal(err)
	}
	if !boundLocked(n, pid) {
		t.Fatalf("process %d not bound while it runs", pid)
	}
	// The same pid with another start time: a reused pid.
	st := n.pids[pid]
	n.pids[pid] = st + 1
	if boundLocked(n, pid) {
		t.Fatalf("a process with pid %d but another start time counts as bound", pid)
	}
	if _, ok := n.pids[pid]; ok {
		t.Fatal("the stale binding was kept")
	}
	if err := bindPIDLocked(n, pid); err != nil {
		t.Fatal(err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if boundLocked(n, pid) {
		t.Fatalf("process %d still bound after it exited", pid)
	}
	if err := bindPIDLocked(n, pid); err == nil {
		t.Fatal("bound a process that does not exist")
	}
	if _, err := procStart(os.Getpid()); err != nil {
		t.Fatalf("own start time: %v", err)
	}
}
