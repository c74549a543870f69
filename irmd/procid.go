package irmd

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
)

// A process bound to a name is remembered by its pid and the time the
// kernel started it (field 22 of /proc/PID/stat, in clock ticks since
// boot). A pid alone is not an identity: when the bound process exits,
// the kernel may hand its pid to another user's process, which would
// then inherit the binding. The pair is unique for the life of the
// host, so a binding dies with its process.

// procStart returns the start time of process pid, or an error when no
// such process exists (or /proc cannot be read).
func procStart(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("process %d: %w", pid, err)
	}
	// The command name (field 2) is in parentheses and may hold spaces
	// and parentheses of its own: the fields after it start after the
	// last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("process %d: malformed stat", pid)
	}
	fields := bytes.Fields(b[i+1:])
	// fields[0] is field 3 (state), so field 22 is fields[19].
	if len(fields) < 20 {
		return 0, fmt.Errorf("process %d: malformed stat", pid)
	}
	st, err := strconv.ParseUint(string(fields[19]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("process %d: malformed start time: %w", pid, err)
	}
	return st, nil
}

// procAlive reports whether the process that was pid at start time st
// still runs.
func procAlive(pid int, st uint64) bool {
	now, err := procStart(pid)
	return err == nil && now == st
}

// bindPIDLocked binds process pid to n, remembered with its start time;
// d.mu held.
func bindPIDLocked(n *nameRec, pid int) error {
	st, err := procStart(pid)
	if err != nil {
		return fmt.Errorf("bind process: no process %d", pid)
	}
	n.pids[pid] = st
	return nil
}

// pidBoundLocked reports whether the process now running as pid is the
// one bound to n, and forgets the binding of a process that is gone;
// d.mu held.
func pidBoundLocked(n *nameRec, pid int) bool {
	st, ok := n.pids[pid]
	if !ok {
		return false
	}
	if procAlive(pid, st) {
		return true
	}
	delete(n.pids, pid)
	return false
}
