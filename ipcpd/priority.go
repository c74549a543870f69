package ipcpd

import (
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// Nice is the scheduling priority an IPCP process asks for: ahead of
// applications (0), so that on a saturated host the layers keep their
// hellos and forwarding going and the applications that offer too much
// are the ones slowed (push-back at the sender), rather than the IPCPs
// in the middle of the path dropping packets and missing hellos.
const Nice = -5

// raisePriority gives every thread of this process the Nice value (on
// Linux a priority is per thread, and threads made later inherit their
// creator's). Without the privilege for it (not root), nothing changes.
func raisePriority() error {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := unix.Setpriority(unix.PRIO_PROCESS, tid, Nice); err != nil {
			return err
		}
	}
	return nil
}
