package flow

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/ouro-net/ouro/lib/clock"
	"github.com/ouro-net/ouro/lib/ctrl"
	"github.com/ouro-net/ouro/lib/pipe"
	"github.com/ouro-net/ouro/lib/qos"
	"github.com/ouro-net/ouro/lib/seal"
)

// sealedPair returns two raw encrypted flows joined by a socket pair,
// with agreed keys, and the peer's session for forging: a flow's Read
// and Write on the real channel without IRMds.
func sealedPair(t *testing.T) (*Flow, *Flow) {
	t.Helper()
	pa, pb, err := pipe.Pair()
	if err != nil {
		t.Fatal(err)
	}
	q := qos.Raw()
	q.Encrypt = true
	a, err := newFlow(ctrl.FlowInfo{ID: 1, Name: "x", QoS: q, MTU: 1400}, pa)
	if err != nil {
		t.Fatal(err)
	}
	b, err := newFlow(ctrl.FlowInfo{ID: 2, Name: "x", QoS: q, MTU: 1400}, pb)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := seal.NewClient(nil, 0)
	reply, ss, err := seal.Respond(c.Hello(), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := c.Finish(reply)
	if err != nil {
		t.Fatal(err)
	}
	a.setSession(cs)
	b.setSession(ss)
	t.Cleanup(func() {
		a.closeRaw()
		b.closeRaw()
	})
	for _, f := range []*Flow{a, b} {
		f.SetDeadline(time.Now().Add(10 * time.Second))
	}
	return a, b
}

// TestEncryptedReadIntoCallerBuffer checks both ways a sealed packet is
// opened on Read: straight into the caller's buffer when the plaintext
// fits (exactly, or with room), and in the flow's own buffer then
// truncated into a shorter one (io.ErrShortBuffer, as on a plain flow).
// A forged packet read into the caller's buffer is dropped and counted,
// and the next packet is delivered whole.
func TestEncryptedReadIntoCallerBuffer(t *testing.T) {
	a, b := sealedPair(t)
	msg := bytes.Repeat([]byte("0123456789"), 100)
	for _, size := range []int{len(msg), len(msg) + 1, 4096} {
		if _, err := a.Write(msg); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, size)
		n, err := b.Read(buf)
		if err != nil || !bytes.Equal(buf[:n], msg) {
			t.Fatalf("buffer %d: read %d bytes, %v", size, n, err)
		}
	}
	if _, err := a.Write(msg); err != nil {
		t.Fatal(err)
	}
	short := make([]byte, 10)
	if n, err := b.Read(short); n != 10 || !errors.Is(err, io.ErrShortBuffer) || !bytes.Equal(short, msg[:10]) {
		t.Fatalf("short buffer: %d bytes %q, %v", n, short[:n], err)
	}
	// A forged packet, then a real one, into a buffer they both fit.
	forged, _ := a.sess.Seal(nil, msg)
	forged[len(forged)-1] ^= 1
	if err := a.p.Write(forged); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Write([]byte("after")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	if n, err := b.Read(buf); err != nil || string(buf[:n]) != "after" {
		t.Fatalf("after a forgery: read %q, %v", buf[:n], err)
	}
	if st := b.Crypto(); st.Opened != 5 || st.Auth != 1 || st.Dropped() != 1 {
		t.Fatalf("receiver stats %+v", *st)
	}
}

// TestEncryptedReadWriteNoAlloc: writing and reading a packet on an
// encrypted raw flow allocates nothing (the sealing goes into the
// flow's buffer, the opening into the caller's).
func TestEncryptedReadWriteNoAlloc(t *testing.T) {
	a, b := sealedPair(t)
	msg := make([]byte, 1000)
	buf := make([]byte, 2048)
	var err error
	allocs := testing.AllocsPerRun(200, func() {
		if _, err = a.Write(msg); err == nil {
			_, err = b.Read(buf)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if allocs != 0 {
		t.Fatalf("%v allocations per packet written and read", allocs)
	}
}

// TestClosedFlowStopsSessionTimers: closing an encrypted flow stops its
// session's timers (the key's age), also when the flow was closed while
// its key exchange ran (an evicted exchange installs its keys late).
func TestClosedFlowStopsSessionTimers(t *testing.T) {
	q := qos.Raw()
	q.Encrypt = true
	for _, lateKeys := range []bool{false, true} {
		p, peer, err := pipe.Pair()
		if err != nil {
			t.Fatal(err)
		}
		defer peer.Close()
		f, err := newFlow(ctrl.FlowInfo{ID: 1, Name: "x", QoS: q, MTU: 1400}, p)
		if err != nil {
			t.Fatal(err)
		}
		clk := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
		k := bytes.Repeat([]byte{1}, seal.KeyLen)
		s := seal.NewSessionClock(k, k, 0, clk)
		if clk.Pending() != 1 {
			t.Fatalf("a new session arms %d timers, want 1 (its key's age)", clk.Pending())
		}
		if lateKeys {
			f.closeRaw()
			f.setSession(s)
		} else {
			f.setSession(s)
			f.closeRaw()
		}
		if n := clk.Pending(); n != 0 {
			t.Fatalf("keys installed late %v: %d timers armed after the flow closed", lateKeys, n)
		}
	}
}
