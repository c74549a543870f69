// Package testenv gives tests real ouro hosts to work with: IRMds in
// process or as separate processes (optionally inside a network
// namespace), the irm and oping binaries built from this tree, and
// network namespaces and veth pairs that are always removed, even when
// the test fails. Tests that need root call RequireRoot, which skips
// with a message when not root.
package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ouro-net/ouro/flow"
	"github.com/ouro-net/ouro/ipcpd"
	"github.com/ouro-net/ouro/ipcpd/all"
	"github.com/ouro-net/ouro/irmd"
	"github.com/ouro-net/ouro/lib/ctrl"
	"github.com/ouro-net/ouro/lib/irmclient"
	"github.com/ouro-net/ouro/lib/logging"
	"github.com/ouro-net/ouro/lib/rundir"
)

// MaybeRunIPCP must be called first in TestMain of any package whose
// tests start in-process IRMds: the IRMd re-executes the test binary to
// run IPCPs, and this turns such a child into an IPCP.
func MaybeRunIPCP() {
	if len(os.Args) < 2 || os.Args[1] != "__ipcpd" {
		return
	}
	args := os.Args[2:]
	get := func(k string) string {
		for i := 0; i+1 < len(args); i++ {
			if args[i] == "--"+k {
				return args[i+1]
			}
		}
		return ""
	}
	lvl, _ := logging.ParseLevel(get("log-level"))
	log := logging.New("ipcpd."+get("name"), lvl, os.Stderr)
	if err := ipcpd.Run(all.Kinds(), get("type"), get("name"), get("rundir"), log); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// Types lists the IPCP types of this build.
func Types() []string {
	var out []string
	for k := range all.Kinds() {
		out = append(out, k)
	}
	return out
}

// Host is an in-process IRMd on a private run directory.
type Host struct {
	Dir    string
	Daemon *irmd.Daemon
}

// ShortTempDir returns a temporary directory with a short path (UNIX
// socket paths are limited to 108 bytes), removed at cleanup.
func ShortTempDir(t testing.TB) string {
	dir, err := os.MkdirTemp("", "ouro-t")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// StartHost starts an in-process IRMd whose IPCPs are re-executions of
// the test binary (see MaybeRunIPCP). It is closed at cleanup.
func StartHost(t testing.TB) *Host {
	t.Helper()
	dir := ShortTempDir(t)
	level := "warn"
	if os.Getenv("OURO_TEST_LOG") != "" {
		level = os.Getenv("OURO_TEST_LOG")
	}
	lvl, _ := logging.ParseLevel(level)
	d, err := irmd.Start(irmd.Config{RunDir: dir, Log: logging.New("irmd", lvl, os.Stderr),
		Types: Types(), Exe: os.Args[0], ChildLogLevel: level})
	if err != nil {
		t.Fatalf("start IRMd: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return &Host{Dir: dir, Daemon: d}
}

// Call sends one control request to the host's IRMd.
func (h *Host) Call(op string, req, resp any) error { return CallDir(h.Dir, op, req, resp) }

// CallDir sends one control request to the IRMd of dir, untyped (kept
// for tests that name operations by string; the typed client is
// lib/irmclient, see Host.Client).
func CallDir(dir, op string, req, resp any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return flow.Call(ctx, dir, op, req, resp)
}

// Client returns the typed control client of the host's IRMd.
func (h *Host) Client() *irmclient.Client { return irmclient.New(h.Dir) }

// ctx bounds one control request made for a test.
func ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 60*time.Second)
}

// Bootstrap bootstraps an IPCP, failing the test on error.
func (h *Host) Bootstrap(t testing.TB, typ, name, layer string, params map[string]string) {
	t.Helper()
	c, cancel := ctx()
	defer cancel()
	if _, err := h.Client().Bootstrap(c, ctrl.IPCPBootstrap{Type: typ, Name: name, Layer: layer, Params: params}); err != nil {
		t.Fatalf("bootstrap %s %s in %s: %v", typ, name, layer, err)
	}
}

// Register registers name in layers, failing the test on error.
func (h *Host) Register(t testing.TB, name string, layers ...string) {
	t.Helper()
	c, cancel := ctx()
	defer cancel()
	if err := h.Client().Register(c, name, layers...); err != nil {
		t.Fatalf("register %s in %v: %v", name, layers, err)
	}
}

// IPCPs lists the host's IPCPs.
func (h *Host) IPCPs(t testing.TB) []ctrl.IPCPInfo {
	t.Helper()
	c, cancel := ctx()
	defer cancel()
	l, err := h.Client().IPCPs(c)
	if err != nil {
		t.Fatalf("ipcp list: %v", err)
	}
	return l
}

// WaitListener waits up to 10 s until a process listens on name at the
// IRMd of dir (the name's entry lists a process) and returns the entry.
func WaitListener(t testing.TB, dir, name string) ctrl.NameInfo {
	t.Helper()
	var last []ctrl.NameInfo
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c, cancel := ctx()
		names, err := irmclient.New(dir).Names(c)
		cancel()
		if err == nil {
			last = names
			for _, n := range names {
				if n.Name == name && len(n.Processes) > 0 {
					return n
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("nobody listens on %s at %s (names %+v, last error %v)", name, dir, last, err)
		}
	}
}

// Opt returns the flow option that selects this host.
func (h *Host) Opt() flow.Option { return flow.WithRunDir(h.Dir) }

// --- binaries and processes ---

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// ModuleRoot returns the directory holding go.mod.
func ModuleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside the ouro module")
	}
	return filepath.Dir(mod), nil
}

// Binaries builds irm and the tools once per test binary and returns
// the directory holding them (irm, oping, and any other tools present).
func Binaries(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		root, err := ModuleRoot()
		if err != nil {
			buildErr = err
			return
		}
		dir, err := os.MkdirTemp("", "ouro-bin")
		if err != nil {
			buildErr = err
			return
		}
		buildDir = dir
		pkgs := []string{"./cmd/irm"}
		for _, tool := range []string{"oping", "operf", "ocbr"} {
			if _, err := os.Stat(filepath.Join(root, "tools", tool)); err == nil {
				pkgs = append(pkgs, "./tools/"+tool)
			}
		}
		args := append([]string{"build", "-buildvcs=false"}, raceFlag()...)
		args = append(args, "-o", dir+"/")
		args = append(args, pkgs...)
		cmd := exec.Command("go", args...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatalf("build binaries: %v", buildErr)
	}
	return buildDir
}

// CleanupBinaries removes the built binaries; call it from TestMain
// after m.Run.
func CleanupBinaries() {
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
}

// Proc is a process started for a test.
type Proc struct {
	Cmd    *exec.Cmd
	Out    *SyncBuffer
	exited chan struct{}
}

// SyncBuffer is a bytes.Buffer safe for concurrent writes and reads.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Command builds a command for a binary of this tree, run inside netns
// when netns is not empty, with OURO_RUNDIR set to dir.
func Command(t testing.TB, netns, dir, bin string, args ...string) *exec.Cmd {
	t.Helper()
	path := filepath.Join(Binaries(t), bin)
	var cmd *exec.Cmd
	if netns != "" {
		cmd = exec.Command("ip", append([]string{"netns", "exec", netns, path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	// Race-built binaries otherwise sleep a second at exit.
	cmd.Env = append(os.Environ(), rundir.EnvVar+"="+dir, "GORACE=atexit_sleep_ms=0")
	return cmd
}

// Start starts a long-running process and stops it (SIGTERM, then
// SIGKILL after 5 s) at cleanup.
func Start(t testing.TB, netns, dir, bin string, args ...string) *Proc {
	t.Helper()
	cmd := Command(t, netns, dir, bin, args...)
	p := &Proc{Cmd: cmd, Out: &SyncBuffer{}, exited: make(chan struct{})}
	cmd.Stdout = p.Out
	cmd.Stderr = p.Out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() {
		cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() { p.Stop() })
	return p
}

// Stop terminates the process and waits for it.
func (p *Proc) Stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		p.Cmd.Process.Kill()
		<-p.exited
	}
}

// Wait waits up to d for the process to exit and reports whether it did.
func (p *Proc) Wait(d time.Duration) bool {
	select {
	case <-p.exited:
		return true
	case <-time.After(d):
		return false
	}
}

// Exited is closed when the process has exited.
func (p *Proc) Exited() <-chan struct{} { return p.exited }

// StartDaemon starts `irm daemon` as a process (inside netns if set) on
// a fresh run directory and waits until it answers.
func StartDaemon(t testing.TB, netns string) (dir string, p *Proc) {
	t.Helper()
	dir = ShortTempDir(t)
	level := "info"
	if l := os.Getenv("OURO_TEST_LOG"); l != "" {
		level = l
	}
	p = Start(t, netns, dir, "irm", "daemon", "--rundir", dir, "--log-level", level)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c, cancel := ctx()
		_, err := irmclient.New(dir).IPCPs(c)
		cancel()
		if err == nil {
			return dir, p
		}
		select {
		case <-p.exited:
			t.Fatalf("irm daemon exited: %s", p.Out.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("irm daemon did not answer: %s", p.Out.String())
	return "", nil
}

// Run runs a binary to completion and returns its combined output and
// exit code.
func Run(t testing.TB, netns, dir, bin string, args ...string) (string, int) {
	t.Helper()
	cmd := Command(t, netns, dir, bin, args...)
	out, err := cmd.CombinedOutput()
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("run %s: %v", bin, err)
		}
		code = ee.ExitCode()
	}
	return string(out), code
}

// MustRun runs a binary and fails the test unless it exits 0.
func MustRun(t testing.TB, netns, dir, bin string, args ...string) string {
	t.Helper()
	out, code := Run(t, netns, dir, bin, args...)
	if code != 0 {
		t.Fatalf("%s %s: exit %d\n%s", bin, strings.Join(args, " "), code, out)
	}
	return out
}

// ServeTool starts a host with a local layer "lo" where name is
// registered, runs a tool's server in process (run with "-l -n NAME
// --rundir DIR") until it prints "serving", and returns the run
// directory and the server's output. The server stops, and must exit
// 0, at cleanup.
func ServeTool(t *testing.T, name string, run func(ctx context.Context, args []string, stdout, stderr io.Writer) int) (string, *SyncBuffer) {
	t.Helper()
	h := StartHost(t)
	h.Bootstrap(t, "local", "lo", "lo", nil)
	h.Register(t, name, "lo")
	out := &SyncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"-l", "-n", name, "--rundir", h.Dir}, out, out) }()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("server exited %d: %s", code, out)
		}
	})
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(out.String(), "serving"); {
		if time.Now().After(deadline) {
			t.Fatalf("server did not start: %s", out)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return h.Dir, out
}
