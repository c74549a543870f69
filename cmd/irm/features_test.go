package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ouro-net/ouro/internal/testenv"
	"github.com/ouro-net/ouro/lib/ctrl"
	"github.com/ouro-net/ouro/lib/rundir"
)

// The tests in this file drive features end to end through the irm
// CLI, as a user would, on one host with a local layer.

// TestDaemonConfig: `irm daemon --config FILE` runs the file's irm
// command lines (comments and a leading "irm" allowed) once it is up, so
// the layer and the name are there and serve; a bad line stops the
// daemon with the file and line named, and so does a nested daemon.
func TestDaemonConfig(t *testing.T) {
	dir := testenv.ShortTempDir(t)
	cfg := filepath.Join(t.TempDir(), "ouro.conf")
	os.WriteFile(cfg, []byte("# a local layer and a name in it\n\nipcp bootstrap type local name lo layer lo\nirm name register srv layer lo  # served below\n"), 0o644)
	testenv.Start(t, "", dir, "irm", "daemon", "--rundir", dir, "--config", cfg)
	waitIPCP(t, dir, "lo", "", 10*time.Second)
	waitNameListed(t, dir, "srv", "in layer lo", 10*time.Second, inLayer("lo"))
	testenv.Start(t, "", dir, "oping", "-l", "-n", "srv")
	waitListener(t, dir, "srv", 10*time.Second)
	if out := testenv.MustRun(t, "", dir, "oping", "-n", "srv", "-c", "3", "-f", "-Q"); !strings.Contains(out, "3 received") {
		t.Fatalf("ping over the configured layer:\n%s", out)
	}

	for _, c := range []struct{ text, want string }{
		{"ipcp bootstrap type local name lo layer lo\nname register ghost layer nolayer\n", ":2: "},
		{"# nested\ndaemon --rundir /tmp/x\n", `:2: "daemon" cannot run from a config file`},
	} {
		bad := filepath.Join(t.TempDir(), "bad.conf")
		os.WriteFile(bad, []byte(c.text), 0o644)
		bdir := testenv.ShortTempDir(t)
		p := testenv.Start(t, "", bdir, "irm", "daemon", "--rundir", bdir, "--config", bad)
		if !p.Wait(10 * time.Second) {
			t.Fatalf("daemon with %q kept running", c.text)
		}
		if out := p.Out.String(); !strings.Contains(out, bad+c.want) || p.Cmd.ProcessState.ExitCode() == 0 {
			t.Fatalf("daemon with a bad config: exit %d, output %q; want %q", p.Cmd.ProcessState.ExitCode(), out, bad+c.want)
		}
	}
}

// TestBindProgramAuto: a program bound with auto is started by the IRMd
// when a flow arrives for its name and nobody listens, with the bound
// arguments; unbound, nothing is started. (The binder is the test's
// user; as root the program runs as root either way.)
func TestBindProgramAuto(t *testing.T) {
	dir, _ := testenv.StartDaemon(t, "")
	oping := filepath.Join(testenv.Binaries(t), "oping")
	testenv.MustRun(t, "", dir, "irm", "ipcp", "bootstrap", "type", "local", "name", "lo", "layer", "lo")
	testenv.MustRun(t, "", dir, "irm", "name", "register", "auto-echo", "layer", "lo")
	if out, code := testenv.Run(t, "", dir, "oping", "-n", "auto-echo", "-c", "1"); code == 0 {
		t.Fatalf("ping with nobody listening and nothing bound succeeded:\n%s", out)
	}
	testenv.MustRun(t, "", dir, "irm", "bind", "program", oping, "name", "auto-echo", "auto", "--", "-l", "-n", "auto-echo")
	if ns, out := listed[ctrl.NameInfo](t, dir, "name"); !slices.ContainsFunc(ns, func(n ctrl.NameInfo) bool {
		return n.Name == "auto-echo" && slices.ContainsFunc(n.Programs, func(p string) bool { return strings.HasPrefix(p, oping) })
	}) {
		t.Fatalf("bound program not listed:\n%s", out)
	}
	out := testenv.MustRun(t, "", dir, "oping", "-n", "auto-echo", "-c", "3", "-f", "-Q")
	if !strings.Contains(out, "3 received") {
		t.Fatalf("ping of an auto-started program:\n%s", out)
	}
	// The started program keeps serving: it listens now.
	pid := waitListener(t, dir, "auto-echo", 10*time.Second).Processes[0]
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	if b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline"); err != nil || !strings.Contains(string(b), "-l\x00-n\x00auto-echo") {
		t.Fatalf("auto-started process %d runs %q (%v), want the bound arguments", pid, b, err)
	}
	testenv.MustRun(t, "", dir, "irm", "unbind", "program", oping, "name", "auto-echo")
	syscall.Kill(pid, syscall.SIGKILL)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the killed server is still there")
		}
	}
	if out, code := testenv.Run(t, "", dir, "oping", "-n", "auto-echo", "-c", "1"); code == 0 {
		t.Fatalf("ping after unbind started the program again:\n%s", out)
	}
}

// servers counts the flows each oping server announced ("new flow").
func servers(ps ...*testenv.Proc) []int {
	n := make([]int, len(ps))
	for i, p := range ps {
		n[i] = strings.Count(p.Out.String(), "new flow")
	}
	return n
}

// TestNameSpillover: with `lb spillover` every flow goes to the oldest
// listener while it accepts, and to the next once it is gone; the
// default, round-robin, alternates.
func TestNameSpillover(t *testing.T) {
	dir, _ := testenv.StartDaemon(t, "")
	testenv.MustRun(t, "", dir, "irm", "ipcp", "bootstrap", "type", "local", "name", "lo", "layer", "lo")
	for _, c := range []struct {
		name, lb string
		want     []int
	}{{"sp", "spillover", []int{4, 0}}, {"rr", "round-robin", []int{2, 2}}} {
		testenv.MustRun(t, "", dir, "irm", "name", "create", c.name, "lb", c.lb)
		testenv.MustRun(t, "", dir, "irm", "name", "register", c.name, "layer", "lo")
		var ps []*testenv.Proc
		for range 2 {
			ps = append(ps, testenv.Start(t, "", dir, "oping", "-l", "-n", c.name))
			for deadline := time.Now().Add(10 * time.Second); !strings.Contains(ps[len(ps)-1].Out.String(), "serving"); time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("oping server did not start")
				}
			}
			time.Sleep(10 * time.Millisecond) // listeners are ordered by when they listened
		}
		if ns, out := listed[ctrl.NameInfo](t, dir, "name"); !slices.ContainsFunc(ns, func(n ctrl.NameInfo) bool { return n.Name == c.name && n.LB == c.lb }) {
			t.Fatalf("name list does not show %s for %s:\n%s", c.lb, c.name, out)
		}
		for range 4 {
			testenv.MustRun(t, "", dir, "oping", "-n", c.name, "-c", "1", "-Q")
		}
		if got := servers(ps...); got[0] != c.want[0] || got[1] != c.want[1] {
			t.Fatalf("%s: flows per server %v, want %v", c.lb, got, c.want)
		}
		if c.lb == "spillover" {
			ps[0].Stop()
			testenv.MustRun(t, "", dir, "oping", "-n", c.name, "-c", "1", "-Q")
			if got := servers(ps[1]); got[0] != 1 {
				t.Fatalf("spillover after the first server left: the second got %d flows, want 1", got[0])
			}
		}
		for _, p := range ps {
			p.Stop()
		}
	}
	if out, code := testenv.Run(t, "", dir, "irm", "name", "create", "x", "lb", "random"); code == 0 || !strings.Contains(out, "round-robin or spillover") {
		t.Fatalf("unknown policy: exit %d: %s", code, out)
	}
}

// TestBindProcessAndUnregister: root owns a name; a process of another
// user (nobody) may listen on it only once root binds that process
// (`irm bind process PID name NAME`); unbound, the next listen is
// refused. `irm name unregister` withdraws the name from the layer:
// allocation fails until it is registered again. Root only.
func TestBindProcessAndUnregister(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipped: needs root (runs a server as nobody against a root IRMd); run the tests as root to include it")
	}
	const nobody = 65534
	bins := testenv.Binaries(t)
	if err := os.Chmod(bins, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := testenv.ShortTempDir(t)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	d := testenv.Start(t, "", dir, "irm", "daemon", "--rundir", dir, "--group", strconv.Itoa(nobody))
	for deadline := time.Now().Add(10 * time.Second); testenv.CallDir(dir, ctrl.OpIPCPList, nil, &ctrl.IPCPList{}) != nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("daemon did not answer:\n%s", d.Out.String())
		}
	}
	testenv.MustRun(t, "", dir, "irm", "ipcp", "bootstrap", "type", "local", "name", "lo", "layer", "lo")
	testenv.MustRun(t, "", dir, "irm", "name", "register", "srv", "layer", "lo")

	// A nobody shell that waits, then becomes the oping server (exec
	// keeps the pid), so root can bind the pid before it listens.
	asNobody := func(wait string) (*exec.Cmd, *testenv.SyncBuffer) {
		cmd := exec.Command("/bin/sh", "-c", "sleep "+wait+"; exec "+filepath.Join(bins, "oping")+" -l -n srv")
		cmd.Env = append(os.Environ(), rundir.EnvVar+"="+dir, "GORACE=atexit_sleep_ms=0")
		cmd.Dir = "/"
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
		out := &testenv.SyncBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd, out
	}
	// Unbound: refused.
	refused, out := asNobody("0")
	refused.Wait()
	if !strings.Contains(out.String(), "permission denied") {
		t.Fatalf("nobody listened on root's unbound name:\n%s", out)
	}
	// Bound by pid: serves.
	srv, out := asNobody("0.5")
	pid := strconv.Itoa(srv.Process.Pid)
	testenv.MustRun(t, "", dir, "irm", "bind", "process", pid, "name", "srv")
	waitNameListed(t, dir, "srv", "bound to process "+pid, 10*time.Second, func(n ctrl.NameInfo) bool {
		return slices.Contains(n.Processes, srv.Process.Pid)
	})
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(out.String(), "serving"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the bound nobody server did not serve:\n%s", out)
		}
	}
	if ping := testenv.MustRun(t, "", dir, "oping", "-n", "srv", "-c", "2", "-f", "-Q"); !strings.Contains(ping, "2 received") {
		t.Fatalf("ping of the bound nobody server:\n%s\nserver: %s", ping, out)
	}
	testenv.MustRun(t, "", dir, "irm", "unbind", "process", pid, "name", "srv")
	if again, code := testenv.Run(t, "", dir, "irm", "unbind", "process", pid, "name", "srv"); code == 0 {
		t.Fatalf("second unbind succeeded: %s", again)
	}
	srv.Process.Kill()
	srv.Wait()
	// Unbound again: a new server of nobody's is refused.
	refused, out = asNobody("0")
	refused.Wait()
	if !strings.Contains(out.String(), "permission denied") {
		t.Fatalf("nobody listened after unbind:\n%s", out)
	}

	// name unregister withdraws the name; register brings it back.
	testenv.Start(t, "", dir, "oping", "-l", "-n", "srv")
	waitListener(t, dir, "srv", 10*time.Second)
	testenv.MustRun(t, "", dir, "irm", "name", "unregister", "srv", "layer", "lo")
	var nl ctrl.NameList
	if err := testenv.CallDir(dir, ctrl.OpNameList, nil, &nl); err != nil {
		t.Fatal(err)
	}
	for _, n := range nl.Names {
		if n.Name == "srv" && len(n.Layers) != 0 {
			t.Fatalf("srv still registered in %v", n.Layers)
		}
	}
	if ping, code := testenv.Run(t, "", dir, "oping", "-n", "srv", "-c", "1"); code == 0 {
		t.Fatalf("ping of an unregistered name succeeded:\n%s", ping)
	}
	testenv.MustRun(t, "", dir, "irm", "name", "register", "srv", "layer", "lo")
	if ping := testenv.MustRun(t, "", dir, "oping", "-n", "srv", "-c", "1", "-Q"); !strings.Contains(ping, "1 received") {
		t.Fatalf("ping after registering again:\n%s", ping)
	}
}
