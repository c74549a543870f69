package flow_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ouro-net/ouro/flow"
	"github.com/ouro-net/ouro/lib/ctrl"
	"github.com/ouro-net/ouro/lib/qos"
	"github.com/ouro-net/ouro/lib/seal"
)

func testPSK(t *testing.T, b byte) *seal.PSK {
	t.Helper()
	p, err := seal.NewPSK(bytes.Repeat([]byte{b}, seal.SecretLen), nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPSKFlow: with the same layer secret on both ends the flow is
// sealed and both ends report it authenticated; a wrong secret and no
// secret (an encrypted flow without one) fail the allocation with
// ErrAuth at once (the listener closes the flow without an answer) and
// are counted by the listener; a plain flow still reaches Accept,
// unauthenticated, for the application to judge.
func TestPSKFlow(t *testing.T) {
	h := localHost(t, "layer")
	psk := testPSK(t, 1)
	l, err := flow.Listen("layer", h.Opt(), flow.WithPSK(psk))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	a, err := flow.Alloc(ctx, "layer", qos.Raw(), h.Opt(), flow.WithPSK(testPSK(t, 1)))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := l.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if !a.Authenticated() || !b.Authenticated() || a.Crypto() == nil || !a.QoS().Encrypt {
		t.Fatalf("authenticated %v/%v, sealed %v", a.Authenticated(), b.Authenticated(), a.Crypto() != nil)
	}
	a.SetDeadline(time.Now().Add(5 * time.Second))
	b.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := a.Write([]byte("member")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	if n, err := b.Read(buf); err != nil || string(buf[:n]) != "member" {
		t.Fatalf("read %q %v", buf[:n], err)
	}

	start := time.Now()
	_, err = flow.Alloc(ctx, "layer", qos.Raw(), h.Opt(), flow.WithPSK(testPSK(t, 2)))
	if !errors.Is(err, flow.ErrAuth) {
		t.Fatalf("wrong secret: %v", err)
	}
	t.Logf("wrong secret refused after %v: %v", time.Since(start), err)
	if _, err := flow.Alloc(ctx, "layer", encrypted(qos.Raw()), h.Opt()); err == nil {
		t.Fatal("encrypted flow without the secret allocated")
	}
	p, err := flow.Alloc(ctx, "layer", qos.Raw(), h.Opt())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	pb, err := l.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer pb.Close()
	if pb.Authenticated() || pb.Crypto() != nil {
		t.Fatal("plain flow reported authenticated")
	}
	hs := l.Handshakes()
	if hs.Auth != 1 || hs.Malformed != 1 || hs.Failed != 2 {
		t.Fatalf("listener counted %+v, want auth 1 malformed 1 failed 2", hs)
	}
	// A secret client against a listener without one: no authentic
	// answer, ErrAuth.
	open, err := flow.Listen("open", h.Opt())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { open.Close() })
	h.Register(t, "open", "lo")
	if _, err := flow.Alloc(ctx, "open", qos.Raw(), h.Opt(), flow.WithPSK(psk)); !errors.Is(err, flow.ErrAuth) {
		t.Fatalf("secret client to open listener: %v", err)
	}
}

// TestPSKStrangersEvicted: silent strangers holding every handshake
// slot of a listener with a secret do not keep a member out: the
// oldest exchange is evicted and counted, and the member's flow is
// accepted.
func TestPSKStrangersEvicted(t *testing.T) {
	h := localHost(t, "layer")
	psk := testPSK(t, 1)
	l, err := flow.Listen("layer", h.Opt(), flow.WithPSK(psk))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// Strangers: encrypted flows allocated through the control
	// protocol and never spoken on (their descriptors stay open).
	for i := 0; i < flow.MaxHandshakes+4; i++ {
		conn, err := flow.Dial(h.Dir)
		if err != nil {
			t.Fatal(err)
		}
		peer := ctrl.NewPeer(conn, nil, nil)
		t.Cleanup(func() { peer.Close(); peer.Wait() })
		var fi ctrl.FlowInfo
		files, err := peer.Call(ctx, ctrl.OpFlowAlloc, ctrl.FlowAlloc{Name: "layer", QoS: encrypted(qos.Raw())}, &fi)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			t.Cleanup(func() { f.Close() })
		}
	}
	a, err := flow.Alloc(ctx, "layer", qos.Raw(), h.Opt(), flow.WithPSK(psk))
	if err != nil {
		t.Fatalf("member kept out: %v (listener %+v)", err, l.Handshakes())
	}
	a.Close()
	b, err := l.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	if hs := l.Handshakes(); hs.Evicted < 4 {
		t.Fatalf("listener counted %+v, want at least 4 evicted", hs)
	}
}
