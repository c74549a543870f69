package irmd

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ouro-net/ouro/lib/ctrl"
)

const testNobody = 65534

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipped: needs root (starts programs as another user); run the tests as root to include it")
	}
}

// openDir returns a fresh directory directly under the temp dir with
// the given mode (t.TempDir nests in a 0700 one other users cannot
// pass).
func openDir(t *testing.T, mode os.FileMode) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "ouro-acc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestBindProgramRunsAsBinder binds programs as nobody (the daemon is
// root): one nobody cannot execute is refused and counted; an auto
// program starts as nobody, not as root.
func TestBindProgramRunsAsBinder(t *testing.T) {
	needRoot(t)
	tmp := openDir(t, 0o777)
	out := filepath.Join(tmp, "uid")
	script := filepath.Join(tmp, "whoami.sh")
	goFile := filepath.Join(tmp, "go")
	body := "#!/bin/sh\nid -u > " + out + "\nwhile [ ! -e " + goFile + " ]; do sleep 0.01; done\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	private := filepath.Join(tmp, "private.sh")
	if err := os.WriteFile(private, []byte("#!/bin/sh\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	run, err := os.MkdirTemp("", "ouro-t")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(run)
	d, err := Start(Config{RunDir: run})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	nobody := ctrl.Cred{UID: testNobody, GID: testNobody, PID: 1}

	err = d.bind(true, ctrl.Bind{Program: private, Name: "n", Auto: true}, nobody)
	if !errors.Is(err, ErrDenied) || !strings.Contains(err.Error(), "may not execute") {
		t.Fatalf("nobody binds a program it cannot run: %v", err)
	}
	if d.Denied() != 1 {
		t.Fatalf("denied count %d, want 1", d.Denied())
	}
	if err := d.bind(true, ctrl.Bind{Program: script, Name: "n", Auto: true}, nobody); err != nil {
		t.Fatalf("nobody binds a program it can run: %v", err)
	}
	d.mu.Lock()
	p := d.names["n"].programs[script]
	d.mu.Unlock()
	if p == nil {
		t.Fatal("program not bound")
	}
	if err := d.startProgram(p, "n"); err != nil {
		t.Fatal(err)
	}
	// While it runs, its process is bound to the name (it may listen
	// there though its executable is the shell); when it exits, no more.
	pids := func() int {
		d.mu.Lock()
		defer d.mu.Unlock()
		return len(d.names["n"].pids)
	}
	if pids() != 1 {
		t.Fatalf("auto-started process bound %d times to its name, want 1", pids())
	}
	defer func() {
		os.WriteFile(goFile, nil, 0o644)
		for deadline := time.Now().Add(10 * time.Second); pids() != 0; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("exited auto-started process still bound to its name")
			}
		}
	}()
	var b []byte
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if b, _ = os.ReadFile(out); strings.HasSuffix(string(b), "\n") {
			break
		}
	}
	if got := strings.TrimSpace(string(b)); got != "65534" {
		t.Fatalf("auto-started program ran as uid %q, want the binder's 65534", got)
	}
}

// TestCanExec checks the permission walk as another user.
func TestCanExec(t *testing.T) {
	needRoot(t)
	tmp := openDir(t, 0o755)
	closed := filepath.Join(tmp, "closed")
	os.Mkdir(closed, 0o700)
	for _, f := range []string{filepath.Join(tmp, "x"), filepath.Join(closed, "x")} {
		if err := os.WriteFile(f, []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(tmp, "noexec"), nil, 0o644)
	nobody := lookupAccount(testNobody, testNobody)
	root := lookupAccount(0, 0)
	cases := []struct {
		path string
		a    account
		ok   bool
	}{
		{filepath.Join(tmp, "x"), nobody, true},
		{filepath.Join(closed, "x"), nobody, false},
		{filepath.Join(closed, "x"), root, true},
		{filepath.Join(tmp, "noexec"), root, false},
		{tmp, root, false},
	}
	for _, c := range cases {
		if err := canExec(c.path, c.a); (err == nil) != c.ok {
			t.Errorf("canExec(%s, uid %d) = %v, want ok=%v", c.path, c.a.uid, err, c.ok)
		}
	}
}

// TestPerUserConnectionCap checks an unprivileged user's connections
// are capped apart from others', and privileged ones are not.
func TestPerUserConnectionCap(t *testing.T) {
	run, err := os.MkdirTemp("", "ouro-t")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(run)
	d, err := Start(Config{RunDir: run, MaxClientsPerUser: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	nobody := ctrl.Cred{UID: testNobody, GID: testNobody, PID: 1}
	fake := []*client{{d: d, cred: nobody}, {d: d, cred: nobody}}
	d.mu.Lock()
	for _, c := range fake {
		d.clients[c] = true
	}
	full := d.overCapLocked(nobody)
	other := d.overCapLocked(ctrl.Cred{UID: 1000, GID: 1000})
	self := d.overCapLocked(ctrl.Cred{UID: d.uid})
	for _, c := range fake {
		delete(d.clients, c)
	}
	d.mu.Unlock()
	if full == "" || other != "" || self != "" {
		t.Fatalf("cap of 2 per user with 2 of nobody's open: nobody %q, uid 1000 %q, daemon's uid %q", full, other, self)
	}
}
