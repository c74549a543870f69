package irmd_test

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ouro-net/ouro/flow"
	"github.com/ouro-net/ouro/internal/testenv"
	"github.com/ouro-net/ouro/irmd"
	"github.com/ouro-net/ouro/lib/ctrl"
	"github.com/ouro-net/ouro/lib/qos"
	"github.com/ouro-net/ouro/lib/rundir"
)

func TestMain(m *testing.M) {
	testenv.MaybeRunIPCP()
	code := m.Run()
	testenv.CleanupBinaries()
	os.Exit(code)
}

func TestSecondDaemonRefusedAndStaleSocketReplaced(t *testing.T) {
	h := testenv.StartHost(t)
	_, err := irmd.Start(irmd.Config{RunDir: h.Dir, Types: testenv.Types()})
	if !errors.Is(err, irmd.ErrBusy) {
		t.Fatalf("second daemon on a busy run directory: %v", err)
	}
	if !strings.Contains(err.Error(), h.Dir) {
		t.Fatalf("error does not name the directory: %v", err)
	}
	// The first daemon still serves.
	if len(h.IPCPs(t)) != 0 {
		t.Fatal("unexpected IPCPs")
	}

	// A stale socket (no lock holder) is replaced.
	dir := testenv.ShortTempDir(t)
	ln, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: rundir.Socket(dir), Net: "unixpacket"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	d, err := irmd.Start(irmd.Config{RunDir: dir, Types: testenv.Types()})
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	if err := testenv.CallDir(dir, ctrl.OpIPCPList, nil, &ctrl.IPCPList{}); err != nil {
		t.Fatalf("daemon over stale socket does not answer: %v", err)
	}
	d.Close()
	if _, err := os.Stat(rundir.Socket(dir)); !os.IsNotExist(err) {
		t.Fatalf("socket left behind after Close: %v", err)
	}
}

func TestRegistryErrors(t *testing.T) {
	h := testenv.StartHost(t)
	cases := []struct {
		op   string
		req  any
		want string
	}{
		{ctrl.OpIPCPCreate, ctrl.IPCPCreate{Type: "nonsense", Name: "x"}, "unknown IPCP type"},
		{ctrl.OpNameRegister, ctrl.NameRegister{Name: "n", Layers: []string{"nowhere"}}, "no IPCP in layer"},
		{ctrl.OpIPCPDestroy, ctrl.IPCPRef{Name: "ghost"}, "no IPCP named"},
		// Enroll creates a missing IPCP (unicast), which finds no layer l.
		{ctrl.OpIPCPEnroll, ctrl.IPCPEnroll{Name: "ghost", Layer: "l"}, "enroll ghost in layer l"},
		{ctrl.OpIPCPEnroll, ctrl.IPCPEnroll{Name: "ghost", Layer: "l", Type: "nonsense"}, "unknown IPCP type"},
		{ctrl.OpNameCreate, ctrl.NameCreate{Name: "n", LB: "random"}, "load-balancing"},
		{"no.such.op", nil, "unknown operation"},
	}
	for _, c := range cases {
		err := h.Call(c.op, c.req, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want error containing %q", c.op, err, c.want)
		}
	}
	if l := h.IPCPs(t); len(l) != 0 {
		t.Errorf("IPCPs left by failed requests: %+v", l)
	}
	h.Bootstrap(t, "local", "lo", "lo", nil)
	if err := h.Call(ctrl.OpIPCPCreate, ctrl.IPCPCreate{Type: "local", Name: "lo"}, nil); err == nil {
		t.Error("duplicate IPCP name accepted")
	}
	if err := h.Call(ctrl.OpIPCPBootstrap, ctrl.IPCPBootstrap{Name: "lo", Layer: "other"}, nil); err == nil {
		t.Error("bootstrapping an IPCP twice accepted")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := flow.Alloc(ctx, "unregistered", qos.Raw(), h.Opt())
	if err == nil || !strings.Contains(err.Error(), "no layer reaches") {
		t.Fatalf("alloc to a name registered nowhere: %v", err)
	}
	h.Register(t, "lonely", "lo")
	_, err = flow.Alloc(ctx, "lonely", qos.Raw(), h.Opt())
	if err == nil || !strings.Contains(err.Error(), "no process accepts") {
		t.Fatalf("alloc to a name nobody listens on: %v", err)
	}
}

// TestMalformedControlTraffic sends garbage and oversized records on
// the control socket and checks the daemon keeps serving.
func TestMalformedControlTraffic(t *testing.T) {
	h := testenv.StartHost(t)
	c, err := net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: rundir.Socket(h.Dir), Net: "unixpacket"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("this is not msgpack"))
	c.Write(make([]byte, ctrl.MaxMsgSize*2))
	c.Write([]byte{0x81, 0xa1, 0x76, 0x07})
	if err := h.Call(ctrl.OpIPCPList, nil, &ctrl.IPCPList{}); err != nil {
		t.Fatalf("daemon stopped serving after malformed input: %v", err)
	}
}

func TestIPCPDeathMarksFlowsDown(t *testing.T) {
	h := testenv.StartHost(t)
	h.Bootstrap(t, "local", "lo", "lo", nil)
	h.Register(t, "srv", "lo")
	l, err := flow.Listen("srv", h.Opt())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f, err := flow.Alloc(ctx, "srv", qos.Raw(), h.Opt())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	g, err := l.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	pid := h.IPCPs(t)[0].PID
	syscall.Kill(pid, syscall.SIGKILL)
	f.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := f.Read(make([]byte, 10)); !errors.Is(err, flow.ErrDown) {
		t.Fatalf("read after IPCP death: %v, want ErrDown", err)
	}
	if _, err := g.Write([]byte("x")); err != nil && !errors.Is(err, flow.ErrDown) {
		t.Fatalf("write after IPCP death: %v", err)
	}
	// The IPCP leaves the registry and its names are unregistered.
	deadline := time.Now().Add(5 * time.Second)
	for len(h.IPCPs(t)) != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := len(h.IPCPs(t)); n != 0 {
		t.Fatalf("%d IPCPs listed after death", n)
	}
	var nl ctrl.NameList
	if err := h.Call(ctrl.OpNameList, nil, &nl); err != nil {
		t.Fatal(err)
	}
	for _, n := range nl.Names {
		if n.Name == "srv" && len(n.Layers) != 0 {
			t.Fatalf("srv still registered in %v", n.Layers)
		}
	}
}

func TestRoundRobinAcrossListeners(t *testing.T) {
	h := testenv.StartHost(t)
	h.Bootstrap(t, "local", "lo", "lo", nil)
	h.Register(t, "svc", "lo")
	var ls [2]*flow.Listener
	for i := range ls {
		l, err := flow.Listen("svc", h.Opt())
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ls[i] = l
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got := [2]int{}
	for i := 0; i < 4; i++ {
		f, err := flow.Alloc(ctx, "svc", qos.Raw(), h.Opt())
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for j, l := range ls {
			actx, acancel := context.WithTimeout(ctx, 50*time.Millisecond)
			g, err := l.Accept(actx)
			acancel()
			if err == nil {
				got[j]++
				g.Close()
			}
		}
	}
	if got[0] != 2 || got[1] != 2 {
		t.Fatalf("round-robin split %v, want [2 2]", got)
	}
}

func TestDestroyAndClose(t *testing.T) {
	h := testenv.StartHost(t)
	h.Bootstrap(t, "local", "lo", "lo", nil)
	pid := h.IPCPs(t)[0].PID
	if err := h.Call(ctrl.OpIPCPDestroy, ctrl.IPCPRef{Name: "lo"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, 0); err == nil {
		// Reaped processes are gone; a zombie would still answer.
		time.Sleep(100 * time.Millisecond)
		if syscall.Kill(pid, 0) == nil {
			t.Fatalf("IPCP process %d still exists after destroy", pid)
		}
	}
	h.Bootstrap(t, "local", "lo2", "lo", nil)
	pid = h.IPCPs(t)[0].PID
	h.Daemon.Close()
	if syscall.Kill(pid, 0) == nil {
		t.Fatalf("IPCP %d survives daemon shutdown", pid)
	}
	if _, err := os.Stat(rundir.Socket(h.Dir)); !os.IsNotExist(err) {
		t.Fatal("control socket left after shutdown")
	}
}

// TestDirectLocalFlows checks that two processes on one host get a flow
// with no IPCP in its path, listed as direct, and that the records go
// when both ends close.
func TestDirectLocalFlows(t *testing.T) {
	h := testenv.StartHost(t)
	h.Bootstrap(t, "local", "lo", "lo", nil)
	h.Register(t, "srv", "lo")
	l, err := flow.Listen("srv", h.Opt())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f, err := flow.Alloc(ctx, "srv", qos.Raw(), h.Opt())
	if err != nil {
		t.Fatal(err)
	}
	g, err := l.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var fl ctrl.FlowList
	if err := h.Call(ctrl.OpFlowList, nil, &fl); err != nil {
		t.Fatal(err)
	}
	if len(fl.Flows) != 2 || fl.Flows[0].State != "direct" || fl.Flows[1].State != "direct" {
		t.Fatalf("flow list: %+v", fl.Flows)
	}
	f.Write([]byte("hi"))
	buf := make([]byte, 8)
	if n, err := g.Read(buf); err != nil || string(buf[:n]) != "hi" {
		t.Fatalf("direct flow read: %q %v", buf[:n], err)
	}
	f.Close()
	g.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if err := h.Call(ctrl.OpFlowList, nil, &fl); err != nil {
			t.Fatal(err)
		}
		if len(fl.Flows) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("flow records left after both ends closed: %+v", fl.Flows)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
