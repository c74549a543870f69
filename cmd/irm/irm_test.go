package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ouro-net/ouro/internal/testenv"
	"github.com/ouro-net/ouro/lib/ctrl"
)

func TestMain(m *testing.M) {
	testenv.MaybeRunIPCP()
	code := m.Run()
	testenv.CleanupBinaries()
	os.Exit(code)
}

// TestUsageErrors checks that bad command lines exit 2 with one line
// naming the problem, and that a missing daemon exits 1.
func TestUsageErrors(t *testing.T) {
	dir := testenv.ShortTempDir(t)
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{}, 2, "no command"},
		{[]string{"frobnicate"}, 2, "unknown command"},
		{[]string{"ipcp", "create", "type"}, 2, "type needs a value"},
		{[]string{"ipcp", "create", "name", "x"}, 2, "missing type"},
		{[]string{"ipcp", "create", "type", "local", "name", "x", "colour", "blue"}, 2, "unknown keyword"},
		{[]string{"ipcp", "connect", "name", "a", "dst", "b", "component", "xx"}, 2, "component must be"},
		{[]string{"ipcp", "connect", "name", "a", "dst", "b", "cost", "many"}, 2, "not a number"},
		{[]string{"bind", "process", "abc", "name", "x"}, 2, "not a process id"},
		{[]string{"name", "register", "x"}, 2, "missing layer"},
		{[]string{"layer"}, 2, "want show LAYER"},
		{[]string{"daemon", "--log-level", "loud"}, 2, "unknown log level"},
		{[]string{"--rundir", dir, "ipcp", "list"}, 1, "no IRMd running"},
	}
	for _, c := range cases {
		var out, errb bytes.Buffer
		code := run(c.args, &out, &errb)
		if code != c.code || !strings.Contains(errb.String(), c.want) {
			t.Errorf("irm %v: exit %d, stderr %q; want exit %d and %q", c.args, code, errb.String(), c.code, c.want)
		}
		if strings.Contains(errb.String(), "goroutine") {
			t.Errorf("irm %v printed a stack trace", c.args)
		}
	}
}

// TestByHand runs the README quickstart with real processes: a daemon,
// a local layer, an oping server and 100 pings with 0% loss. It also
// checks a second daemon is refused and the daemon survives an IPCP
// killed mid-ping, with the client reporting the flow down.
func TestByHand(t *testing.T) {
	dir, daemon := testenv.StartDaemon(t, "")
	out, code := testenv.Run(t, "", dir, "irm", "daemon", "--rundir", dir)
	if code != 1 || !strings.Contains(out, "another IRMd is running") {
		t.Fatalf("second daemon: exit %d: %s", code, out)
	}
	testenv.MustRun(t, "", dir, "irm", "ipcp", "bootstrap", "type", "local", "name", "lo", "layer", "lo")
	testenv.MustRun(t, "", dir, "irm", "name", "register", "oping", "layer", "lo")
	srv := testenv.Start(t, "", dir, "oping", "-l", "-n", "oping")
	waitListener(t, dir, "oping", 10*time.Second)
	out = testenv.MustRun(t, "", dir, "oping", "-n", "oping", "-c", "100", "-i", "1ms")
	if !strings.Contains(out, "100 packets transmitted, 100 received, 0% packet loss") {
		t.Fatalf("oping output:\n%s", out)
	}
	if !strings.Contains(out, "rtt min/avg/max/mdev") || !strings.Contains(out, "bytes from oping: seq=99") {
		t.Fatalf("oping output lacks reply lines or rtt summary:\n%s", out)
	}
	list := testenv.MustRun(t, "", dir, "irm", "ipcp", "list")
	if !strings.Contains(list, "lo") || !strings.Contains(list, "local") || !strings.Contains(list, "PID") {
		t.Fatalf("ipcp list:\n%s", list)
	}

	// Kill the local IPCP while a client pings: the client must report
	// the flow down promptly and exit 1; the daemon must stay up.
	cli := testenv.Start(t, "", dir, "oping", "-n", "oping", "-c", "100000", "-i", "1ms", "-Q")
	time.Sleep(300 * time.Millisecond)
	pid := ipcpPID(t, testenv.MustRun(t, "", dir, "irm", "ipcp", "list", "--json"))
	killed := time.Now()
	syscall.Kill(pid, syscall.SIGKILL)
	if !cli.Wait(10 * time.Second) {
		t.Fatalf("client still running 10s after its IPCP died:\n%s", cli.Out.String())
	}
	t.Logf("client exited %v after the IPCP was killed", time.Since(killed))
	if cli.Cmd.ProcessState.ExitCode() != 1 || !strings.Contains(cli.Out.String(), "flow down") {
		t.Fatalf("client exit %d:\n%s", cli.Cmd.ProcessState.ExitCode(), cli.Out.String())
	}
	select {
	case <-daemon.Exited():
		t.Fatalf("daemon died with its IPCP:\n%s", daemon.Out.String())
	default:
	}
	testenv.MustRun(t, "", dir, "irm", "ipcp", "list")
	srv.Stop()
	daemon.Stop()
	if _, err := os.Stat(filepath.Join(dir, "irmd.sock")); !os.IsNotExist(err) {
		t.Fatalf("socket left after SIGTERM: %v", err)
	}
	if !strings.Contains(daemon.Out.String(), "IPCP gone") {
		t.Fatalf("daemon did not log the IPCP's death:\n%s", daemon.Out.String())
	}
}

// ipcpPID returns the pid of IPCP lo in `irm ipcp list --json` output.
func ipcpPID(t *testing.T, list string) int {
	t.Helper()
	var ipcps []ctrl.IPCPInfo
	if err := json.Unmarshal([]byte(list), &ipcps); err != nil {
		t.Fatalf("irm ipcp list --json: %v\n%s", err, list)
	}
	for _, i := range ipcps {
		if i.Name == "lo" && i.PID > 0 {
			return i.PID
		}
	}
	t.Fatalf("no pid in:\n%s", list)
	return 0
}

// TestDemo runs `irm demo` and checks its verdict and the numbers it
// rests on, against loose bounds: probes sent while the link was down
// came back (over the other side), the interruption was shorter than
// the phase, nothing much was lost before the cut, and the stream
// carried on after the restore. The demo leaves no file and no IPCP
// process behind (read from /proc, which must be there).
func TestDemo(t *testing.T) {
	bin := filepath.Join(testenv.Binaries(t), "irm")
	tmp := testenv.ShortTempDir(t)
	cmd := exec.Command(bin, "demo", "-phase", "1s", "-max-gap", "900ms")
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out)
	}
	m := demoMeasuredRE.FindStringSubmatch(string(out))
	if m == nil || !strings.Contains(string(out), "verdict: the flow survived the cut") {
		t.Fatalf("demo output lacks its measurements or verdict:\n%s", out)
	}
	n := func(i int) int { v, _ := strconv.Atoi(m[i]); return v }
	sentBefore, lostBefore, sentDown, echoedDown, lostDown, echoedAfter := n(1), n(2), n(3), n(4), n(5), n(6)
	gap, _ := strconv.ParseFloat(m[8], 64)
	t.Logf("demo measured: %s", m[0])
	switch {
	case sentBefore < 100 || lostBefore*20 > sentBefore:
		t.Errorf("before the cut: %d sent, %d lost", sentBefore, lostBefore)
	case echoedDown == 0 || lostDown >= sentDown:
		t.Errorf("while the link was down: %d sent, %d echoed, %d lost", sentDown, echoedDown, lostDown)
	case gap <= 0 || gap >= 1000:
		t.Errorf("interruption %.1f ms: want more than 0 and less than the phase", gap)
	case echoedAfter == 0:
		t.Errorf("nothing echoed after the restore")
	}
	if !strings.Contains(string(out), "both next hops again") {
		t.Errorf("demo did not show the restored routes:\n%s", out)
	}
	left, _ := os.ReadDir(tmp)
	if len(left) != 0 {
		t.Fatalf("demo left %d entries in its temp dir", len(left))
	}
	if len(processesWith(t, os.Args[0])) == 0 {
		t.Fatal("the process scan does not see this test itself")
	}
	if ps := processesWith(t, "__ipcpd", tmp); len(ps) != 0 {
		t.Fatalf("demo left IPCP processes: %v", ps)
	}
}

var demoMeasuredRE = regexp.MustCompile(`measured: before the cut (\d+) sent, (\d+) lost; while down (\d+) sent, (\d+) echoed, ` +
	`(\d+) lost around the cut; after the restore (\d+) echoed, (\d+) lost; interruption ([0-9.]+) ms`)

// processesWith lists the command lines (from /proc) of the processes
// whose command line contains every one of words. It fails the test
// when /proc cannot be read, so a missing /proc never passes silently.
func processesWith(t *testing.T, words ...string) []string {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatalf("cannot list processes: %v", err)
	}
	var found []string
	seen := 0
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue // gone meanwhile
		}
		seen++
		cmdline := strings.ReplaceAll(string(b), "\x00", " ")
		all := true
		for _, w := range words {
			all = all && strings.Contains(cmdline, w)
		}
		if all {
			found = append(found, e.Name()+": "+cmdline)
		}
	}
	if seen == 0 {
		t.Fatal("read no process from /proc")
	}
	return found
}
