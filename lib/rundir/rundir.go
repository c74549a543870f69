// Package rundir resolves the run directory that names one IRMd and
// holds its control socket and lock file.
//
// Every command and library call picks its daemon by run directory: the
// --rundir flag, else $OURO_RUNDIR, else /run/ouro for root, else
// $XDG_RUNTIME_DIR/ouro, else /tmp/ouro-UID. Several daemons can run side
// by side (tests, one per network namespace) with distinct directories.
package rundir

import (
	"fmt"
	"os"
	"path/filepath"
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
	return fmt.Sprintf("/tmp/ouro-%d", os.Geteuid())
}

// Socket returns the path of the IRMd control socket in dir.
func Socket(dir string) string { return filepath.Join(dir, "irmd.sock") }

// Lock returns the path of the lock file a live IRMd holds in dir.
func Lock(dir string) string { return filepath.Join(dir, "irmd.lock") }
