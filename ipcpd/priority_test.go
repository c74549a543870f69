package ipcpd

import (
	"os"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// TestRaisePriority checks that every thread of the process gets the
// IPCP's nice value (root only: lowering nice needs the privilege).
func TestRaisePriority(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: only a privileged process may raise its priority")
	}
	if err := raisePriority(); err != nil {
		t.Fatal(err)
	}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		tid, _ := strconv.Atoi(task.Name())
		// The raw system call returns 20 - nice.
		prio, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
		if err != nil {
			continue // the thread ended meanwhile
		}
		if nice := 20 - prio; nice != Nice {
			t.Errorf("thread %d has nice %d, want %d", tid, nice, Nice)
		}
	}
}
