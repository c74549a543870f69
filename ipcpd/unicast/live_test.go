package unicast_test

import (
	"syscall"
	"testing"
	"time"

	"github.com/ouro-net/ouro/internal/topo"
)

// TestSilentFailure stops (SIGSTOP) B's unicast IPCP, joined to A by
// two parallel lower flows: the flows neither close nor report carrier
// loss (B's lower IPCPs run on), they only go silent, so A must find
// both by keepalive and take B out of its forwarding table. Once B runs
// again (SIGCONT) it is heard, and both flows come back.
func TestSilentFailure(t *testing.T) {
	tp := build(t, topo.Config{Hosts: []string{"a", "b"}, Links: [][2]string{{"b", "a"}}, Lowers: 2})
	waitRoute(t, tp, "a", "b", 2)
	ipcps, err := tp.IPCPs("b")
	if err != nil {
		t.Fatal(err)
	}
	pid := 0
	for _, i := range ipcps {
		if i.Type == "unicast" {
			pid = i.PID
		}
	}
	if pid == 0 {
		t.Fatalf("no unicast IPCP at B: %+v", ipcps)
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatalf("stop B's unicast IPCP: %v", err)
	}
	stopped := true
	cont := func() {
		if stopped {
			stopped = false
			if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
				t.Errorf("continue B's unicast IPCP: %v", err)
			}
		}
	}
	t.Cleanup(cont)
	deadline := time.Now().Add(20 * time.Second)
	n := -1
	for time.Now().Before(deadline) {
		st, err := tp.Status("a")
		if err != nil {
			t.Fatal(err)
		}
		if n = topo.RouteNextHops(st, "b"); n == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n != 0 {
		show, _ := tp.Show("a")
		t.Fatalf("A still routes to B over %d flows while B is silent\n%s", n, show)
	}
	cont()
	waitRoute(t, tp, "a", "b", 2)
}
