package irmd_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ouro-net/ouro/internal/testenv"
	"github.com/ouro-net/ouro/irmd"
	"github.com/ouro-net/ouro/lib/ctrl"
	"github.com/ouro-net/ouro/lib/logging"
	"github.com/ouro-net/ouro/lib/rundir"
)

// nobodyUID is the unprivileged user the access tests run commands as.
const nobodyUID = 65534

// rootHost starts an in-process IRMd as root whose socket group is
// nobody's, on a run directory nobody can reach, with the built binaries
// reachable by nobody too. It returns the daemon, its run directory,
// the binaries' directory and the daemon's log.
func rootHost(t *testing.T) (*irmd.Daemon, string, string, *testenv.SyncBuffer) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipped: needs root (runs commands as nobody against a root IRMd); run the tests as root to include it")
	}
	bins := testenv.Binaries(t)
	if err := os.Chmod(bins, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := testenv.ShortTempDir(t)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	logs := &testenv.SyncBuffer{}
	d, err := irmd.Start(irmd.Config{RunDir: dir, Log: logging.New("irmd", hclog.Info, logs),
		Types: testenv.Types(), Exe: os.Args[0], ChildLogLevel: "warn", Group: strconv.Itoa(nobodyUID)})
	if err != nil {
		t.Fatalf("start IRMd: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	var st syscall.Stat_t
	if err := syscall.Stat(rundir.Socket(dir), &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode&0o777 != 0o660 || st.Uid != 0 || st.Gid != nobodyUID {
		t.Fatalf("control socket mode %04o owner %d:%d, want 0660 0:%d", st.Mode&0o777, st.Uid, st.Gid, nobodyUID)
	}
	return d, dir, bins, logs
}

// asNobody runs a binary of bins as nobody against the IRMd of dir and
// returns its combined output and exit code.
func asNobody(t *testing.T, bins, dir, bin string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(filepath.Join(bins, bin), args...)
	cmd.Env = append(os.Environ(), rundir.EnvVar+"="+dir, "GORACE=atexit_sleep_ms=0")
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobodyUID, Gid: nobodyUID}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out), ee.ExitCode()
		}
		t.Fatalf("run %s as nobody: %v", bin, err)
	}
	return string(out), 0
}

// snapshot is what the IRMd lists: IPCPs and names with their bindings.
func snapshot(t *testing.T, dir string) (ctrl.IPCPList, ctrl.NameList) {
	t.Helper()
	var il ctrl.IPCPList
	var nl ctrl.NameList
	if err := testenv.CallDir(dir, ctrl.OpIPCPList, nil, &il); err != nil {
		t.Fatal(err)
	}
	if err := testenv.CallDir(dir, ctrl.OpNameList, nil, &nl); err != nil {
		t.Fatal(err)
	}
	return il, nl
}

// waitBound waits until a process listens on name.
func waitBound(t *testing.T, dir, name string) int {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		_, nl := snapshot(t, dir)
		for _, n := range nl.Names {
			if n.Name == name && len(n.Processes) > 0 {
				return n.Processes[0]
			}
		}
	}
	t.Fatalf("no process listens on %s", name)
	return 0
}

// TestNobodyAgainstRootIRMd plays the attacks of a local user as
// nobody against a root IRMd: every management request and listening
// on root's name are refused with "permission denied", irm exits 1,
// nothing changes, each refusal is counted and logged with uid and pid;
// nobody can still ping root's server, and can serve a name root bound
// to nobody's program.
func TestNobodyAgainstRootIRMd(t *testing.T) {
	d, dir, bins, logs := rootHost(t)
	if err := testenv.CallDir(dir, ctrl.OpIPCPBootstrap, ctrl.IPCPBootstrap{Type: "local", Name: "lo", Layer: "lo"}, nil); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"srv", "svc2"} {
		if err := testenv.CallDir(dir, ctrl.OpNameRegister, ctrl.NameRegister{Name: n, Layers: []string{"lo"}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range []ctrl.Bind{{Program: "/bin/true", Name: "svc2"}, {PID: os.Getpid(), Name: "svc2"}} {
		if err := testenv.CallDir(dir, ctrl.OpBind, b, nil); err != nil {
			t.Fatalf("root bind %+v: %v", b, err)
		}
	}
	testenv.Start(t, "", dir, "oping", "-l", "-n", "srv") // root's server
	srvPID := waitBound(t, dir, "srv")
	beforeI, beforeN := snapshot(t, dir)

	pid := strconv.Itoa(srvPID)
	attacks := [][]string{
		{"irm", "ipcp", "create", "type", "local", "name", "x"},
		{"irm", "ipcp", "bootstrap", "type", "udp4", "name", "x", "layer", "u", "ip", "127.0.0.1", "port", "53"},
		{"irm", "ipcp", "bootstrap", "type", "local", "name", "lo2", "layer", "lo2"},
		{"irm", "ipcp", "enroll", "name", "lo", "layer", "lo"},
		{"irm", "ipcp", "connect", "name", "lo", "dst", "y"},
		{"irm", "ipcp", "disconnect", "name", "lo", "dst", "y"},
		{"irm", "ipcp", "destroy", "name", "lo"},
		{"irm", "name", "create", "zz"},
		{"irm", "name", "register", "srv", "layer", "lo"},
		{"irm", "name", "register", "pwn", "layer", "lo"},
		{"irm", "name", "unregister", "srv", "layer", "lo"},
		{"irm", "bind", "program", "/bin/sh", "name", "pwn", "auto"},
		{"irm", "bind", "program", "/bin/true", "name", "srv"},
		{"irm", "bind", "process", strconv.Itoa(os.Getpid()), "name", "srv"},
		{"irm", "bind", "ipcp", "lo", "name", "srv"},
		{"irm", "unbind", "program", "/bin/true", "name", "svc2"},
		{"irm", "unbind", "process", pid, "name", "srv"},
		{"irm", "unbind", "ipcp", "lo", "name", "svc2"},
		{"irm", "unbind", "process", strconv.Itoa(os.Getpid()), "name", "svc2"},
		{"oping", "-l", "-n", "srv"}, // listen on root's name
	}
	for _, a := range attacks {
		out, code := asNobody(t, bins, dir, a[0], a[1:]...)
		if code != 1 || !strings.Contains(out, "permission denied") {
			t.Errorf("as nobody, %s: exit %d, output %q; want exit 1 and permission denied", strings.Join(a, " "), code, out)
		}
	}
	if got := d.Denied(); got != uint64(len(attacks)) {
		t.Errorf("denied count %d, want %d", got, len(attacks))
	}
	afterI, afterN := snapshot(t, dir)
	if !reflect.DeepEqual(beforeI, afterI) || !reflect.DeepEqual(beforeN, afterN) {
		t.Errorf("refused requests changed the registry:\nbefore %+v %+v\nafter  %+v %+v", beforeI, beforeN, afterI, afterN)
	}
	log := logs.String()
	if strings.Count(log, "permission denied") < len(attacks) || !strings.Contains(log, "uid="+strconv.Itoa(nobodyUID)) || !strings.Contains(log, "pid=") {
		t.Errorf("refusals not logged with uid and pid:\n%s", log)
	}

	// The legitimate uses still work: nobody lists and pings root's name.
	var ipcps []ctrl.IPCPInfo
	if out, code := asNobody(t, bins, dir, "irm", "ipcp", "list", "--json"); code != 0 || json.Unmarshal([]byte(out), &ipcps) != nil ||
		!slices.ContainsFunc(ipcps, func(i ctrl.IPCPInfo) bool { return i.Name == "lo" }) {
		t.Fatalf("nobody's ipcp list: exit %d: %s", code, out)
	}
	out, code := asNobody(t, bins, dir, "oping", "-n", "srv", "-c", "3", "-i", "10ms")
	if code != 0 || !strings.Contains(out, "3 received") {
		t.Fatalf("nobody's ping of root's name: exit %d:\n%s", code, out)
	}

	// Root binds nobody's program to a name: nobody may serve it.
	if err := testenv.CallDir(dir, ctrl.OpNameRegister, ctrl.NameRegister{Name: "mine", Layers: []string{"lo"}}, nil); err != nil {
		t.Fatal(err)
	}
	if err := testenv.CallDir(dir, ctrl.OpBind, ctrl.Bind{Program: filepath.Join(bins, "oping"), Name: "mine"}, nil); err != nil {
		t.Fatal(err)
	}
	srv := exec.Command(filepath.Join(bins, "oping"), "-l", "-n", "mine")
	srv.Env = append(os.Environ(), rundir.EnvVar+"="+dir, "GORACE=atexit_sleep_ms=0")
	srv.Dir = "/"
	srv.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobodyUID, Gid: nobodyUID}}
	srvOut := &testenv.SyncBuffer{}
	srv.Stdout, srv.Stderr = srvOut, srvOut
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	waitBound(t, dir, "mine")
	out, code = testenv.Run(t, "", dir, "oping", "-n", "mine", "-c", "3", "-i", "10ms")
	if code != 0 || !strings.Contains(out, "3 received") {
		t.Fatalf("root's ping of nobody's bound program: exit %d:\n%s\nserver: %s", code, out, srvOut)
	}
	if got := d.Denied(); got != uint64(len(attacks)) {
		t.Errorf("legitimate uses were refused: denied count %d, want %d", got, len(attacks))
	}
}

// nobodyEnv is the environment of a nobody process with no run
// directory chosen, so it uses its default (/tmp/ouro-65534).
func nobodyEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, rundir.EnvVar+"=") || strings.HasPrefix(kv, "XDG_RUNTIME_DIR=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "GORACE=atexit_sleep_ms=0")
}

// TestNobodyDefaultRunDirPlanted plants nobody's default run directory
// /tmp/ouro-65534 as root (a symlink, then a directory of root's): the
// daemon nobody starts refuses it with a clear error and exits 1. Left
// alone, it creates the directory itself, mode 0700, and serves.
func TestNobodyDefaultRunDirPlanted(t *testing.T) {
	_, _, bins, _ := rootHost(t)
	def := "/tmp/ouro-" + strconv.Itoa(nobodyUID)
	if _, err := os.Lstat(def); err == nil {
		t.Skipf("skipped: %s already exists; remove it to run this test", def)
	}
	t.Cleanup(func() { os.RemoveAll(def) })
	target := testenv.ShortTempDir(t)
	victim := filepath.Join(target, "irmd.lock")
	os.WriteFile(victim, []byte("precious\n"), 0o666)
	os.Chmod(victim, 0o666)
	os.Chmod(target, 0o777)
	// A daemon that wrongly accepts a planted directory serves until
	// this bound kills it.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	daemon := func() *exec.Cmd {
		cmd := exec.CommandContext(ctx, filepath.Join(bins, "irm"), "daemon")
		cmd.Env = nobodyEnv()
		cmd.Dir = "/"
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobodyUID, Gid: nobodyUID}}
		return cmd
	}
	plants := map[string]func() error{
		"symlink":    func() error { return os.Symlink(target, def) },
		"root's dir": func() error { return os.Mkdir(def, 0o777) },
	}
	for what, plant := range plants {
		os.RemoveAll(def)
		if err := plant(); err != nil {
			t.Fatal(err)
		}
		out, err := daemon().CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "unsafe run directory") {
			t.Errorf("%s planted: %v: %s", what, err, out)
		}
		if b, _ := os.ReadFile(victim); string(b) != "precious\n" {
			t.Errorf("%s planted: the victim file was changed: %q", what, b)
		}
	}
	os.RemoveAll(def)
	cmd := daemon()
	out := &testenv.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(rundir.Socket(def)); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nobody's daemon did not start: %s", out)
		}
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(def, &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode&0o777 != 0o700 || st.Uid != nobodyUID || st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		t.Fatalf("%s: mode %o owner %d, want a 0700 directory of nobody's", def, st.Mode, st.Uid)
	}
}
