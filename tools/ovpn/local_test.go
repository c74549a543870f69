package main

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ouro-net/ouro/flow"
	"github.com/ouro-net/ouro/internal/testenv"
	"github.com/ouro-net/ouro/lib/qos"
)

// fakeTUN is a TUN device made of channels: the tunnel reads what the
// test puts in fromKernel and writes into toKernel.
type fakeTUN struct {
	name       string
	fromKernel chan []byte
	toKernel   chan []byte
	closed     chan struct{}
	once       sync.Once
	broken     chan struct{} // closed: Read fails, as a device that vanished
	breakOnce  sync.Once

	mu  sync.Mutex
	mtu int
}

func newFakeTUN(name string) *fakeTUN {
	return &fakeTUN{name: name, fromKernel: make(chan []byte, 64), toKernel: make(chan []byte, 64), closed: make(chan struct{}),
		broken: make(chan struct{})}
}

func (f *fakeTUN) Read(b []byte) (int, error) {
	select {
	case p := <-f.fromKernel:
		return copy(b, p), nil
	case <-f.closed:
		return 0, os.ErrClosed
	case <-f.broken:
		return 0, errors.New("device gone")
	}
}

func (f *fakeTUN) fail() { f.breakOnce.Do(func() { close(f.broken) }) }

func (f *fakeTUN) Write(b []byte) (int, error) {
	select {
	case <-f.closed:
		return 0, os.ErrClosed
	case f.toKernel <- append([]byte(nil), b...):
	default: // a full kernel queue drops
	}
	return len(b), nil
}

func (f *fakeTUN) Close() error {
	f.once.Do(func() { close(f.closed) })
	return nil
}

func (f *fakeTUN) Name() string { return f.name }

func (f *fakeTUN) MTU() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.mtu
}

func (f *fakeTUN) SetMTU(m int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mtu = m
	return nil
}

// endpoint is one ovpn run in this process on a fake TUN.
type endpoint struct {
	tun    *fakeTUN
	out    *testenv.SyncBuffer
	cancel context.CancelFunc
	code   chan int
}

// startEnd runs ovpn with args on a fake device.
func startEnd(t *testing.T, args ...string) *endpoint {
	t.Helper()
	c, err := parse(append(args, "--json"), os.Stderr)
	if err != nil {
		t.Fatalf("parse %v: %v", args, err)
	}
	e := &endpoint{tun: newFakeTUN("fake" + c.prefix.Addr().String()), out: &testenv.SyncBuffer{}, code: make(chan int, 1)}
	c.openTUN = func(_ string, _ netip.Prefix, mtu int) (tunIface, error) {
		e.tun.SetMTU(mtu)
		return e.tun, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	go func() { e.code <- runConfig(ctx, c, e.out, e.out) }()
	t.Cleanup(func() { e.stop() })
	return e
}

// stop ends the run and returns its exit status.
func (e *endpoint) stop() int {
	e.cancel()
	return e.exit()
}

// exit waits for the run to end by itself and returns its exit status.
func (e *endpoint) exit() int {
	select {
	case c := <-e.code:
		e.code <- c
		return c
	case <-time.After(20 * time.Second):
		return -1
	}
}

// wait waits until the run printed more than skip events named ev.
func (e *endpoint) wait(t *testing.T, ev string, skip int) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if strings.Count(e.out.String(), `"event":"`+ev+`"`) > skip {
			return
		}
		select {
		case c := <-e.code:
			e.code <- c
			t.Fatalf("exited %d before %q:\n%s", c, ev, e.out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q event:\n%s", ev, e.out)
		}
	}
}

// expectPacket waits for p on tun's kernel side.
func expectPacket(t *testing.T, tun *fakeTUN, p []byte, what string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case got := <-tun.toKernel:
			if bytes.Equal(got, p) {
				return
			}
		case <-timeout:
			t.Fatalf("%s: packet never arrived", what)
		}
	}
}

// TestTunnelLocal runs a server and clients of ovpn in this process over
// a local layer, with channel devices in place of TUNs (no root): the
// routing between server and clients and between clients, the clear
// refusals, the client cap, and a server restart the clients ride out.
func TestTunnelLocal(t *testing.T) {
	h := testenv.StartHost(t)
	h.Bootstrap(t, "local", "lo", "lo", nil)
	h.Register(t, "vpn", "lo")
	srvArgs := []string{"-l", "-n", "vpn", "--ip", "10.9.0.1/24", "--rundir", h.Dir, "--max-clients", "3", "--status", "50ms"}
	srv := startEnd(t, srvArgs...)
	srv.wait(t, "serving", 0)
	c1 := startEnd(t, "-n", "vpn", "--ip", "10.9.0.2/24", "--rundir", h.Dir)
	c2 := startEnd(t, "-n", "vpn", "--ip", "10.9.0.3/24", "--rundir", h.Dir)
	c1.wait(t, "up", 0)
	c2.wait(t, "up", 0)
	a1, a2, as := netip.MustParseAddr("10.9.0.2"), netip.MustParseAddr("10.9.0.3"), netip.MustParseAddr("10.9.0.1")

	p := udp4(a1, as, []byte("client 1 to the server"))
	c1.tun.fromKernel <- p
	expectPacket(t, srv.tun, p, "client 1 to the server")
	p = udp4(as, a2, []byte("server to client 2"))
	srv.tun.fromKernel <- p
	expectPacket(t, c2.tun, p, "server to client 2")
	p = udp4(a1, a2, []byte("client 1 to client 2"))
	c1.tun.fromKernel <- p
	expectPacket(t, c2.tun, p, "client 1 to client 2")
	srv.tun.fromKernel <- udp4(as, netip.MustParseAddr("10.9.0.9"), []byte("nobody"))
	if m := srv.tun.MTU(); m < minMTU {
		t.Errorf("server MTU %d after clients joined", m)
	}

	// Refusals, each a clear error and exit 1.
	conflict := startEnd(t, "-n", "vpn", "--ip", "10.9.0.2/24", "--rundir", h.Dir)
	if code := conflict.exit(); code != 1 || !strings.Contains(conflict.out.String(), "address 10.9.0.2 is in use by another client") {
		t.Errorf("conflicting client: exit %d:\n%s", code, conflict.out)
	}
	// A refused client that stays, still saying hello, is no client: the
	// server answers it for a while, but the slot is free for c3 (it
	// was not: "server full: it takes 3 clients").
	actx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	stayer, err := flow.Alloc(actx, "vpn", qos.Raw(), flow.WithRunDir(h.Dir))
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	defer stayer.Close()
	if m := answer(t, stayer, helloMsg("10.9.0.2/24")); m.Type != msgRefuse || m.Code != refuseConflict {
		t.Errorf("a hello claiming c2's address: %+v, want a conflict refusal", m)
	}
	c3 := startEnd(t, "-n", "vpn", "--ip", "10.9.0.4/24", "--rundir", h.Dir)
	c3.wait(t, "up", 0)
	stayer.Close()
	full := startEnd(t, "-n", "vpn", "--ip", "10.9.0.5/24", "--rundir", h.Dir)
	if code := full.exit(); code != 1 || !strings.Contains(full.out.String(), "server full") {
		t.Errorf("fourth client: exit %d:\n%s", code, full.out)
	}
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(srv.out.String(), `"no-route":1`); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Errorf("server did not count the packet for 10.9.0.9 as no-route:\n%s", srv.out)
			break
		}
	}

	// The server goes away and comes back: the clients keep their
	// devices, reallocate, and the tunnel carries again.
	if code := srv.stop(); code != 0 {
		t.Fatalf("server exit %d:\n%s", code, srv.out)
	}
	c1.wait(t, "down", 0)
	srv = startEnd(t, srvArgs...)
	c1.wait(t, "up", 1)
	c2.wait(t, "up", 1)
	p = udp4(a2, as, []byte("client 2 after the restart"))
	c2.tun.fromKernel <- p
	expectPacket(t, srv.tun, p, "client 2 after the restart")
	// A device failing under a client stops it with the reason.
	c3.tun.fail()
	if code := c3.exit(); code != 1 || !strings.Contains(c3.out.String(), "read TUN: device gone") {
		t.Errorf("client whose device failed: exit %d:\n%s", code, c3.out)
	}
	for _, e := range []*endpoint{c1, c2, srv} {
		if code := e.stop(); code != 0 {
			t.Errorf("exit %d:\n%s", code, e.out)
		}
		select {
		case <-e.tun.closed:
		default:
			t.Errorf("device %s not closed at exit", e.tun.name)
		}
	}
}

// TestTunnelLocalKeys runs ovpn's -k and -genkey in this process over a
// local layer (no root): a server with an identity key, a client
// pinning another key fails clearly and exits 1, one pinning the
// server's key carries packets; bad key files are refused with the
// reason, and -genkey never overwrites.
func TestTunnelLocalKeys(t *testing.T) {
	h := testenv.StartHost(t)
	h.Bootstrap(t, "local", "lo", "lo", nil)
	h.Register(t, "vpn", "lo")
	dir := t.TempDir()
	srvKey, otherKey := filepath.Join(dir, "srv.key"), filepath.Join(dir, "other.key")
	for _, k := range []string{srvKey, otherKey} {
		e := startEnd(t, "-genkey", k)
		if code := e.exit(); code != 0 {
			t.Fatalf("-genkey %s: exit %d:\n%s", k, code, e.out)
		}
	}
	if e := startEnd(t, "-genkey", srvKey); e.exit() != 1 || !strings.Contains(e.out.String(), "exists") {
		t.Errorf("-genkey over an existing key: exit %d:\n%s", e.exit(), e.out)
	}
	srv := startEnd(t, "-l", "-n", "vpn", "--ip", "10.9.0.1/24", "--rundir", h.Dir, "-k", srvKey)
	srv.wait(t, "serving", 0)

	wrong := startEnd(t, "-n", "vpn", "--ip", "10.9.0.2/24", "--rundir", h.Dir, "-x", "-k", otherKey+".pub")
	if code := wrong.exit(); code != 1 || !strings.Contains(wrong.out.String(), "server identity check failed") ||
		strings.Contains(wrong.out.String(), `"event":"up"`) {
		t.Errorf("client pinning another key: exit %d:\n%s", code, wrong.out)
	}
	right := startEnd(t, "-n", "vpn", "--ip", "10.9.0.3/24", "--rundir", h.Dir, "-x", "-k", srvKey+".pub")
	right.wait(t, "up", 0)
	a, as := netip.MustParseAddr("10.9.0.3"), netip.MustParseAddr("10.9.0.1")
	p := udp4(a, as, []byte("through a pinned, encrypted tunnel"))
	right.tun.fromKernel <- p
	expectPacket(t, srv.tun, p, "client to the server")
	p = udp4(as, a, []byte("and back"))
	srv.tun.fromKernel <- p
	expectPacket(t, right.tun, p, "server to the client")

	// Bad key files: the reason, exit 1.
	short := filepath.Join(dir, "short.pub")
	os.WriteFile(short, []byte("12345"), 0o644)
	open := filepath.Join(dir, "open.key")
	data, _ := os.ReadFile(srvKey)
	os.WriteFile(open, data, 0o644)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-n", "vpn", "--ip", "10.9.0.4/24", "-x", "-k", short}, "5 bytes, want 32"},
		{[]string{"-n", "vpn", "--ip", "10.9.0.4/24", "-x", "-k", filepath.Join(dir, "missing")}, "no such file"},
		{[]string{"-l", "-n", "vpn2", "--ip", "10.9.1.1/24", "-k", open}, "chmod 600"},
	} {
		e := startEnd(t, append(tc.args, "--rundir", h.Dir)...)
		if code := e.exit(); code != 1 || !strings.Contains(e.out.String(), tc.want) {
			t.Errorf("%v: exit %d, want 1 and %q:\n%s", tc.args, code, tc.want, e.out)
		}
	}
}
