package irmd

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ouro-net/ouro/lib/ctrl"
)

// Local access control.
//
// Every control connection carries the credentials the kernel recorded
// when its process connected (SO_PEERCRED); every request on it is
// checked against them by authorize, the one place the policy lives,
// keyed by the access class each operation has in the table of lib/ctrl
// (ctrl.ClientOps):
//
//   - managing the system (IPCPs, names, bindings) needs root or the
//     daemon's own uid ("privileged");
//   - anyone who can reach the socket may list, show, resolve and
//     allocate flows;
//   - listening on a name needs a privileged caller, or a name bound to
//     the caller's own process or program;
//   - a name belongs to the uid that first created or bound it, and no
//     other uid but root may bind, register or listen on it.
//
// A refusal changes nothing, answers "permission denied: ...", and is
// counted (Daemon.Denied) and logged with the caller's uid and pid.

// ErrDenied is wrapped by every refusal of the access policy; its text
// starts the error the caller sees.
var ErrDenied = errors.New("permission denied")

// privileged reports whether cred may manage this daemon.
func (d *Daemon) privileged(cred ctrl.Cred) bool { return cred.UID == 0 || cred.UID == d.uid }

// authorize decides whether the client may perform operation op of
// access class class (from the table in lib/ctrl) with request body m
// (decodeErr: why m could not be decoded). It returns nil or an error
// wrapping ErrDenied, which it has counted and logged. It is the one
// place the policy is applied; every entry of the dispatch table calls
// it.
func (d *Daemon) authorize(c *client, op string, class ctrl.Access, m any, decodeErr error) error {
	var why string
	switch class {
	case ctrl.AccessOpen:
		return nil
	case ctrl.AccessManage:
		if !d.privileged(c.cred) {
			why = fmt.Sprintf("%s needs root or the IRMd's own user (uid %d)", op, d.uid)
		} else if t, ok := m.(ctrl.TargetName); ok && decodeErr == nil && t.Target() != "" {
			d.mu.Lock()
			why = d.nameOwnerDeniesLocked(c.cred, t.Target())
			d.mu.Unlock()
		}
	case ctrl.AccessListen:
		t, ok := m.(ctrl.TargetName)
		if !ok || decodeErr != nil {
			return nil // the handler reports the malformed body
		}
		d.mu.Lock()
		why = d.listenDeniesLocked(c.cred, t.Target())
		d.mu.Unlock()
	default:
		// Not an operation of the public socket (an IPCP's channel
		// operation, or a class this daemon does not know).
		why = fmt.Sprintf("%s is not served on the control socket", op)
	}
	if why == "" {
		return nil
	}
	return d.deny(c.cred, op, why)
}

// deny counts and logs a refusal and returns its error.
func (d *Daemon) deny(cred ctrl.Cred, op, why string) error {
	d.denied.Add(1)
	d.log.Warn("permission denied", "op", op, "uid", cred.UID, "pid", cred.PID, "reason", why)
	return fmt.Errorf("%w: %s", ErrDenied, why)
}

// Denied reports how many requests the access policy refused.
func (d *Daemon) Denied() uint64 { return d.denied.Load() }

// nameOwnerDeniesLocked returns why cred may not change name, or "" if
// it may: a name belongs to the uid that created it, and only that uid
// or root may change it; d.mu held.
func (d *Daemon) nameOwnerDeniesLocked(cred ctrl.Cred, name string) string {
	n := d.names[name]
	if n == nil || cred.UID == 0 || n.owner == cred.UID {
		return ""
	}
	return fmt.Sprintf("name %q belongs to uid %d", name, n.owner)
}

// listenDeniesLocked returns why the process of cred may not listen on
// name, or "" if it may; d.mu held.
func (d *Daemon) listenDeniesLocked(cred ctrl.Cred, name string) string {
	if name == "" {
		return "" // the handler refuses an empty name
	}
	n := d.names[name]
	if d.privileged(cred) {
		if n == nil || cred.UID == 0 || n.owner == cred.UID || boundLocked(n, cred.PID) {
			return ""
		}
		return fmt.Sprintf("name %q belongs to uid %d", name, n.owner)
	}
	if n != nil && boundLocked(n, cred.PID) {
		return ""
	}
	return fmt.Sprintf("name %q is not bound to this process (pid %d) or its program; its owner can bind it: irm bind process %d name %s",
		name, cred.PID, cred.PID, name)
}

// boundLocked reports whether process pid, or the program it runs, is
// bound to n; d.mu held.
func boundLocked(n *nameRec, pid int) bool {
	if pid == 0 {
		return false
	}
	if pidBoundLocked(n, pid) {
		return true
	}
	if len(n.programs) == 0 {
		return false
	}
	exe, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
	if err != nil {
		return false
	}
	for path := range n.programs {
		if path == exe {
			return true
		}
		if real, err := filepath.EvalSymlinks(path); err == nil && real == exe {
			return true
		}
	}
	return false
}

// account is what the IRMd needs to start a program as a user.
type account struct {
	uid, gid int
	groups   []int
	home     string
	name     string
}

// lookupAccount returns the account of uid (falling back to gid when
// the user database has no entry).
func lookupAccount(uid, gid int) account {
	a := account{uid: uid, gid: gid, groups: []int{gid}}
	u, err := user.LookupId(strconv.Itoa(uid))
	if err != nil {
		return a
	}
	a.name, a.home = u.Username, u.HomeDir
	if g, err := strconv.Atoi(u.Gid); err == nil {
		a.gid = g
	}
	a.groups = []int{a.gid}
	if ids, err := u.GroupIds(); err == nil {
		for _, s := range ids {
			if g, err := strconv.Atoi(s); err == nil && g != a.gid {
				a.groups = append(a.groups, g)
			}
		}
	}
	return a
}

// canExec reports whether account a may execute path: search permission
// on every directory above it and execute permission on the file, as
// the kernel would check them for that user (root needs one execute
// bit). Symlinks are followed as exec would.
func canExec(path string, a account) error {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return err
	}
	real, err = filepath.Abs(real)
	if err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Stat(real, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("%s is not a regular file", real)
	}
	if !permits(st, a, 1) {
		return fmt.Errorf("uid %d may not execute %s (mode %04o, owner %d:%d)", a.uid, real, st.Mode&0o7777, st.Uid, st.Gid)
	}
	for dir := filepath.Dir(real); ; dir = filepath.Dir(dir) {
		if err := unix.Stat(dir, &st); err != nil {
			return err
		}
		if !permits(st, a, 1) {
			return fmt.Errorf("uid %d may not reach %s (directory %s, mode %04o)", a.uid, real, dir, st.Mode&0o7777)
		}
		if dir == "/" || dir == "." {
			return nil
		}
	}
}

// permits applies the owner/group/other permission bits of st for
// account a; bit is 4 (read), 2 (write) or 1 (execute/search).
func permits(st unix.Stat_t, a account, bit uint32) bool {
	mode := st.Mode & 0o777
	if a.uid == 0 {
		// Root passes any read/write check, and an execute check if
		// any execute bit is set (always, for directories).
		return bit != 1 || st.Mode&unix.S_IFMT == unix.S_IFDIR || mode&0o111 != 0
	}
	switch {
	case int(st.Uid) == a.uid:
		return mode&(bit<<6) != 0
	case containsInt(a.groups, int(st.Gid)):
		return mode&(bit<<3) != 0
	}
	return mode&bit != 0
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// programEnv returns the environment for a program started as a: the
// daemon's, with the user's identity variables replaced.
func programEnv(a account, self bool, rundirVar string) []string {
	env := os.Environ()
	if !self && a.name != "" {
		out := env[:0:0]
		for _, kv := range env {
			if strings.HasPrefix(kv, "HOME=") || strings.HasPrefix(kv, "USER=") || strings.HasPrefix(kv, "LOGNAME=") {
				continue
			}
			out = append(out, kv)
		}
		env = append(out, "HOME="+a.home, "USER="+a.name, "LOGNAME="+a.name)
	}
	return append(env, rundirVar)
}
