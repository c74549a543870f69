package frct

import (
	"errors"
	"testing"
	"time"

	"github.com/ouro-net/ouro/lib/clock"
	"github.com/ouro-net/ouro/lib/memlink"
)

func virtualCfg(fc *clock.Fake) Config {
	return Config{Clock: fc, Reliable: true, InOrder: true, PeerTimeout: 10 * time.Second, KeepAlive: time.Second, Linger: -1}
}

// settle lets the readers process what the last Advance sent.
func settle(t *testing.T, a, b *Conn) {
	t.Helper()
	eventually(t, "both ends acknowledged", func() bool {
		return a.Stats().Unacked == 0 && b.Stats().Unacked == 0
	})
}

func TestKeepAliveKeepsIdleFlowAlive(t *testing.T) {
	leakCheck(t)
	fc := clock.NewFake(time.Unix(1000, 0))
	cfg := virtualCfg(fc)
	a, b, _, _ := newPair(t, cfg, memlink.Config{Clock: fc})
	for i := 0; i < 30; i++ { // 30 s of virtual time, three PeerTimeouts
		ra, rb := a.Stats().PacketsReceived, b.Stats().PacketsReceived
		fc.Advance(cfg.KeepAlive)
		eventually(t, "keepalive exchange", func() bool {
			return a.Stats().PacketsReceived > ra && b.Stats().PacketsReceived > rb
		})
	}
	for _, c := range []*Conn{a, b} {
		c.mu.Lock()
		err := c.err
		c.mu.Unlock()
		if err != nil {
			t.Fatalf("idle flow with a live peer failed: %v", err)
		}
	}
	if a.Stats().KeepAlivesSent+b.Stats().KeepAlivesSent == 0 {
		t.Fatal("no keepalives sent")
	}
}

func TestPeerGoneAfterTimeoutNotBefore(t *testing.T) {
	leakCheck(t)
	fc := clock.NewFake(time.Unix(1000, 0))
	cfg := virtualCfg(fc)
	// B outlives A's deadline: B giving up first would close its end,
	// and A would see its lower end, not its timer.
	la, lb := memlink.NewPair(memlink.Config{Clock: fc})
	a, err := New(la, cfg)
	if err != nil {
		t.Fatal(err)
	}
	bcfg := cfg
	bcfg.PeerTimeout = 10 * cfg.PeerTimeout
	b, err := New(lb, bcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		a.Close()
		b.Close()
	})

	if _, err := a.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	if n, err := b.Read(make([]byte, 10)); n != 4 || err != nil {
		t.Fatalf("Read = %d, %v", n, err)
	}
	fc.Advance(time.Millisecond) // the delayed ACK
	settle(t, a, b)

	readErr := make(chan error, 1)
	go func() {
		_, err := a.Read(make([]byte, 10))
		readErr <- err
	}()
	la.Cut() // the peer vanishes: everything is dropped silently
	a.mu.Lock()
	deadline := a.lastRecv.Add(cfg.PeerTimeout)
	a.mu.Unlock()

	fc.Advance(deadline.Sub(fc.Now()) - time.Nanosecond)
	a.mu.Lock()
	err = a.err
	a.mu.Unlock()
	if err != nil {
		t.Fatalf("failed before PeerTimeout: %v", err)
	}
	select {
	case err := <-readErr:
		t.Fatalf("Read returned before PeerTimeout: %v", err)
	default:
	}
	if a.Stats().KeepAlivesSent == 0 {
		t.Fatal("no keepalives while idle")
	}

	fc.Advance(time.Nanosecond)
	select {
	case err := <-readErr:
		if !errors.Is(err, ErrPeerGone) {
			t.Fatalf("Read error %v, want ErrPeerGone", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Read still blocked after PeerTimeout")
	}
	if _, err := a.Write([]byte("x")); !errors.Is(err, ErrPeerGone) {
		t.Fatalf("Write error %v, want ErrPeerGone", err)
	}
}

func TestReadDeadlineVirtualTime(t *testing.T) {
	leakCheck(t)
	fc := clock.NewFake(time.Unix(1000, 0))
	a, _, _, _ := newPair(t, virtualCfg(fc), memlink.Config{Clock: fc})
	a.SetReadDeadline(fc.Now().Add(time.Second))
	errc := make(chan error, 1)
	go func() {
		_, err := a.Read(make([]byte, 10))
		errc <- err
	}()
	fc.Advance(time.Second - 1)
	select {
	case err := <-errc:
		t.Fatalf("Read returned early: %v", err)
	default:
	}
	fc.Advance(1)
	err := <-errc
	var ne interface{ Timeout() bool }
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Read error %v, want a timeout", err)
	}
	// A deadline in the past fails at once; clearing it lets Read block again.
	a.SetDeadline(fc.Now().Add(-time.Second))
	if _, err := a.Read(make([]byte, 1)); !errors.As(err, &ne) {
		t.Fatalf("past deadline: %v", err)
	}
	if _, err := a.Write([]byte("x")); !errors.As(err, &ne) {
		t.Fatalf("past write deadline: %v", err)
	}
	a.SetDeadline(time.Time{})
	if _, err := a.Write([]byte("x")); err != nil {
		t.Fatalf("Write after clearing the deadline: %v", err)
	}
}
