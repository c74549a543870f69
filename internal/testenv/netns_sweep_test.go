package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"testing"
)

// TestSweepStaleNetNS: a namespace left by a test process that is gone
// (killed by its -timeout, no cleanup ran) is deleted by the next
// sweep; one whose creator still runs is kept.
func TestSweepStaleNetNS(t *testing.T) {
	RequireRoot(t)
	// A pid that was just in use and is now free: a child that exited.
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	dead := cmd.Process.Pid
	if _, err := os.Stat("/proc/" + strconv.Itoa(dead)); err == nil {
		t.Skipf("pid %d was reused at once; cannot stage a dead creator", dead)
	}
	stale := fmt.Sprintf("%s%d-%d", nsPrefix, dead, 1)
	live := fmt.Sprintf("%s%d-%d", nsPrefix, os.Getpid(), 1<<30)
	for _, n := range []string{stale, live} {
		IP(t, "netns", "add", n)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", n).Run() })
	}
	sweepStaleNetNS()
	if _, err := os.Stat("/var/run/netns/" + stale); !os.IsNotExist(err) {
		t.Fatalf("namespace %s of a gone process survived the sweep (%v)", stale, err)
	}
	if _, err := os.Stat("/var/run/netns/" + live); err != nil {
		t.Fatalf("namespace %s of this running process was swept: %v", live, err)
	}
}
