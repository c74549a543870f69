package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

var (
	nsSeq     atomic.Uint64
	sweepOnce sync.Once
)

// nsPrefix starts the names of the namespaces NetNS makes: nsPrefix,
// the creating process's pid, '-', a sequence number.
const nsPrefix = "ourons-"

// sweepStaleNetNS deletes the namespaces NetNS made in test processes
// that are gone without their cleanups (a test binary killed by its
// -timeout runs no t.Cleanup). A namespace whose creator still runs,
// or whose name does not parse, is left alone.
func sweepStaleNetNS() {
	ents, err := os.ReadDir("/var/run/netns")
	if err != nil {
		return
	}
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), nsPrefix)
		if !ok {
			continue
		}
		pidText, _, ok := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if !ok || err != nil || pid <= 0 {
			continue
		}
		if _, err := os.Stat("/proc/" + pidText); err == nil {
			continue // its process runs (or the pid was reused): not ours to judge
		}
		exec.Command("ip", "netns", "del", e.Name()).Run()
	}
}

// RequireRoot skips the test, saying so, unless it runs as root with
// the ip tool available.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipped: needs root (network namespaces, veth, AF_PACKET, TAP); run the tests as root to include it")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("skipped: needs the ip tool (iproute2)")
	}
}

// uniq returns a short name unique to this process and call, within
// the 15-byte limit of interface names.
func uniq(prefix string) string {
	return fmt.Sprintf("%s%d%d", prefix, os.Getpid()%100000, nsSeq.Add(1))
}

// IP runs the ip tool, failing the test on error.
func IP(t testing.TB, args ...string) {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// InNS runs a command inside a namespace, failing the test on error.
func InNS(t testing.TB, ns string, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("in %s: %s: %v\n%s", ns, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// NetNS creates a network namespace with its loopback up and deletes it
// at cleanup (which also removes every interface inside it).
func NetNS(t testing.TB) string {
	t.Helper()
	RequireRoot(t)
	sweepOnce.Do(sweepStaleNetNS)
	name := fmt.Sprintf("%s%d-%d", nsPrefix, os.Getpid(), nsSeq.Add(1))
	IP(t, "netns", "add", name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	IP(t, "-n", name, "link", "set", "lo", "up")
	return name
}

// Veth creates a veth pair with one end in nsA and the other in nsB,
// both up, and returns the two interface names. The pair goes away with
// either namespace; cleanup also deletes it explicitly.
func Veth(t testing.TB, nsA, nsB string) (string, string) {
	t.Helper()
	a, b := uniq("ova"), uniq("ovb")
	IP(t, "link", "add", a, "type", "veth", "peer", "name", b)
	t.Cleanup(func() {
		exec.Command("ip", "link", "del", a).Run()
		exec.Command("ip", "-n", nsA, "link", "del", a).Run()
	})
	IP(t, "link", "set", a, "netns", nsA)
	IP(t, "link", "set", b, "netns", nsB)
	IP(t, "-n", nsA, "link", "set", a, "up")
	IP(t, "-n", nsB, "link", "set", b, "up")
	return a, b
}

// LinkSet runs `ip -n ns link set dev up|down`.
func LinkSet(t testing.TB, ns, dev, state string) {
	t.Helper()
	IP(t, "-n", ns, "link", "set", dev, state)
}

// UniqueName returns a short unique name with prefix, for devices.
func UniqueName(prefix string) string { return uniq(prefix) }

// InNetNS runs fn on an OS thread switched into namespace ns and waits
// for it: sockets and devices fn creates live in ns. Errors are
// reported on t; a thread that cannot switch back stays locked and
// dies with its goroutine.
func InNetNS(t testing.TB, ns string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			t.Error(err)
			runtime.UnlockOSThread()
			return
		}
		defer orig.Close()
		target, err := os.Open("/run/netns/" + ns)
		if err != nil {
			t.Error(err)
			runtime.UnlockOSThread()
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			t.Error(err)
			runtime.UnlockOSThread()
			return
		}
		fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			t.Error(err)
			return
		}
		runtime.UnlockOSThread()
	}()
	<-done
}
