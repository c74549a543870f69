package irmd

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ouro-net/ouro/flow"
	"github.com/ouro-net/ouro/lib/ctrl"
)

// fakeIPCP puts an IPCP of layer layer into d's registry whose process
// is this test process (so its pid is the pid of every connection the
// test makes to the public socket) and whose channel is served by the
// test: it reaches every name and takes every flow. It is removed again
// before d closes (d would signal "its" process).
func fakeIPCP(t *testing.T, d *Daemon, name, layer string) *ctrl.Peer {
	t.Helper()
	irmdEnd, childFile, err := ctrl.Pair()
	if err != nil {
		t.Fatal(err)
	}
	childEnd, err := ctrl.FileConn(childFile)
	if err != nil {
		t.Fatal(err)
	}
	child := ctrl.NewPeer(childEnd, func(_ context.Context, req *ctrl.Request) (any, []*os.File, error) {
		switch req.Op {
		case ctrl.OpIPCPQuery:
			return ctrl.IPCPQueryReply{Reachable: true}, nil, nil
		case ctrl.OpIPCPAlloc:
			return ctrl.IPCPAllocReply{MTU: 1400}, nil, nil
		}
		return nil, nil, nil
	}, nil)
	r := &ipcpRec{d: d, name: name, typ: "unicast", up: make(chan struct{}), exited: make(chan struct{}),
		created: time.Now(), cmd: &exec.Cmd{Process: &os.Process{Pid: os.Getpid()}},
		layer: layer, state: "enrolled"}
	r.peer = ctrl.NewPeer(irmdEnd, r.handle, nil)
	d.mu.Lock()
	d.ipcps[name] = r
	d.mu.Unlock()
	t.Cleanup(func() {
		d.mu.Lock()
		delete(d.ipcps, name)
		d.mu.Unlock()
		r.peer.Close()
		r.peer.Wait()
		child.Close()
		child.Wait()
	})
	return child
}

// TestIPCPKnownByChannelNotPID: the IRMd knows an IPCP by the channel it
// spawned it with, never by the pid of a connection. A connection the
// IPCP makes over its channel (ipcpd.dial) allocates with the IPCP's own
// layer left out; a connection to the public socket from a process with
// the IPCP's very pid (here: the same process) is an ordinary client:
// its allocation may use that layer, and the IPCP's operations
// (ipcpd.dial among them) are refused.
func TestIPCPKnownByChannelNotPID(t *testing.T) {
	run, err := os.MkdirTemp("", "ouro-t")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(run) })
	d, err := Start(Config{RunDir: run})
	if err != nil {
		t.Fatal(err)
	}
	// Before fakeIPCP: cleanups run last first, so the fake IPCP is
	// out of the registry when the daemon stops its IPCPs.
	t.Cleanup(func() { d.Close() })
	ch := fakeIPCP(t, d, "fake", "net")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// The public socket, same pid as the IPCP: an application.
	f, err := flow.Alloc(ctx, "x", flow.QoS{Name: "raw"}, flow.WithRunDir(run))
	if err != nil {
		t.Fatalf("allocation on the public socket by a process with the IPCP's pid: %v (the IRMd took it for the IPCP)", err)
	}
	if f.Layer() != "net" {
		t.Errorf("flow over layer %q, want net", f.Layer())
	}
	f.Close()
	for _, op := range []string{ctrl.OpIPCPDial, ctrl.OpIPCPResolve, ctrl.OpIPCPArrive} {
		err := flow.Call(ctx, run, op, ctrl.NameResolve{Name: "x"}, nil)
		if err == nil || !strings.Contains(err.Error(), "unknown operation") {
			t.Errorf("%s on the public socket by a process with the IPCP's pid: %v, want unknown operation", op, err)
		}
	}

	// The IPCP's own connection, made over its channel: its layer is
	// left out, so nothing reaches x.
	dial := func(ctx context.Context) (*ctrl.Conn, error) {
		_, files, err := ctrl.Invoke(ctx, ch, ctrl.IPCPDialOp, ctrl.None{})
		if err != nil {
			return nil, err
		}
		if len(files) != 1 {
			ctrl.CloseFiles(files)
			t.Fatalf("ipcpd.dial replied with %d descriptors", len(files))
		}
		return ctrl.FileConn(files[0])
	}
	f, err = flow.Alloc(ctx, "x", flow.QoS{Name: "raw"}, flow.WithDialer(dial))
	if err == nil {
		f.Close()
		t.Fatalf("the IPCP's own connection allocated over its own layer %q", f.Layer())
	}
	if !strings.Contains(err.Error(), "no layer on this host") {
		t.Errorf("allocation over the IPCP's own connection: %v, want no layer", err)
	}
	// Its connection is a client with the IPCP's credentials, gone
	// when the IPCP closes it.
	ipcpConns := func() (n int) {
		d.mu.Lock()
		defer d.mu.Unlock()
		for c := range d.clients {
			if c.ipcp != nil {
				n++
				if c.cred.PID != os.Getpid() || c.cred.UID != d.uid {
					t.Errorf("IPCP connection credentials %+v", c.cred)
				}
			}
		}
		return n
	}
	gone := func() {
		for ipcpConns() != 0 {
			if ctx.Err() != nil {
				t.Fatal("the IPCP's connection stayed registered after it was closed")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	gone() // the failed allocation's
	conn, err := dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := ipcpConns(); n != 1 {
		t.Errorf("%d IPCP connections open, want 1", n)
	}
	conn.Close()
	gone()
}
