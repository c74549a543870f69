// Package rundir resolves the run directory that names one IRMd and
// holds its control socket and lock file, and prepares it safely for a
// daemon.
//
// Every command and library call picks its daemon by run directory: the
// --rundir flag, else $OURO_RUNDIR, else /run/ouro for root, else
// $XDG_RUNTIME_DIR/ouro, else /tmp/ouro-UID. Several daemons can run side
// by side (tests, one per network namespace) with distinct directories.
//
// A daemon calls Prepare before it takes the directory: the directory
// must be a real directory (not a symlink) owned by the daemon's user and
// writable by nobody else, so no other user can plant the lock file or
// the socket in it. The /tmp fallback is a predictable name another user
// could create first; Prepare creates it with mode 0700 and refuses it
// if it is not exactly that.
package rundir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// EnvVar is the environment variable that selects the run directory.
const EnvVar = "OURO_RUNDIR"

// Resolve returns the run directory to use: flag if non-empty, else the
// environment, else the default for this user.
func Resolve(flag string) string {
	if flag != "" {
		return flag
	}
	if v := os.Getenv(EnvVar); v != "" {
		return v
	}
	return Default()
}

// Default returns the per-user default run directory.
func Default() string {
	if os.Geteuid() == 0 {
		return "/run/ouro"
	}
	if x := os.Getenv("XDG_RUNTIME_DIR"); x != "" {
		return filepath.Join(x, "ouro")
	}
	return tmpDefault(os.Geteuid())
}

func tmpDefault(uid int) string { return fmt.Sprintf("/tmp/ouro-%d", uid) }

// Socket returns the path of the IRMd control socket in dir.
func Socket(dir string) string { return filepath.Join(dir, "irmd.sock") }

// Lock returns the path of the lock file a live IRMd holds in dir.
func Lock(dir string) string { return filepath.Join(dir, "irmd.lock") }

// ErrUnsafe is wrapped by Prepare's errors when the directory exists but
// could have been planted or tampered with by another user.
var ErrUnsafe = errors.New("unsafe run directory")

// Prepare makes dir ready for a daemon running as the current effective
// user: it creates it if missing (mode 0700 for the per-user defaults
// under /tmp and $XDG_RUNTIME_DIR, 0755 otherwise so that members of the
// socket's group can reach the socket) and verifies that it is a
// directory, not a symlink, owned by this user, and not writable by
// group or others. The /tmp fallback must in addition be mode 0700.
func Prepare(dir string) error {
	uid := os.Geteuid()
	private := dir == tmpDefault(uid)
	if x := os.Getenv("XDG_RUNTIME_DIR"); x != "" && dir == filepath.Join(x, "ouro") && uid != 0 {
		private = true
	}
	mode := os.FileMode(0o755)
	if private {
		mode = 0o700
	}
	if parent := filepath.Dir(dir); parent != dir {
		if err := os.MkdirAll(parent, 0o755); err != nil {
			return fmt.Errorf("run directory %s: %w", dir, err)
		}
	}
	if err := unix.Mkdir(dir, uint32(mode)); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("run directory %s: %w", dir, err)
	}
	return Verify(dir, private)
}

// Verify checks dir as Prepare does, without creating it; private also
// demands mode 0700.
func Verify(dir string, private bool) error {
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return fmt.Errorf("run directory %s: %w", dir, err)
	}
	uid := os.Geteuid()
	switch {
	case st.Mode&unix.S_IFMT == unix.S_IFLNK:
		return fmt.Errorf("%w: %s is a symlink (remove it, or choose another with --rundir)", ErrUnsafe, dir)
	case st.Mode&unix.S_IFMT != unix.S_IFDIR:
		return fmt.Errorf("%w: %s is not a directory", ErrUnsafe, dir)
	case int(st.Uid) != uid:
		return fmt.Errorf("%w: %s is owned by uid %d, not by this user (uid %d)", ErrUnsafe, dir, st.Uid, uid)
	case st.Mode&0o022 != 0:
		return fmt.Errorf("%w: %s is writable by group or others (mode %04o)", ErrUnsafe, dir, st.Mode&0o7777)
	case private && st.Mode&0o077 != 0:
		return fmt.Errorf("%w: %s must be mode 0700, is %04o", ErrUnsafe, dir, st.Mode&0o7777)
	}
	return nil
}
