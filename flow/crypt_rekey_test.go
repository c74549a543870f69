package flow

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/ouro-net/ouro/lib/clock"
	"github.com/ouro-net/ouro/lib/ctrl"
	"github.com/ouro-net/ouro/lib/pipe"
	"github.com/ouro-net/ouro/lib/qos"
	"github.com/ouro-net/ouro/lib/seal"
)

// TestEncryptedFlowTimeRekey runs an encrypted flow over a real socket
// pair through key epochs in virtual time: the flow's writes step to a
// new key every seal.RekeyAfterTime and the peer opens them, the peer's
// packets across epochs reach Read, and after an outage of ten epochs
// (the peer seals, nothing arrives) the next packet is read again.
func TestEncryptedFlowTimeRekey(t *testing.T) {
	p, ipcp, err := pipe.Pair()
	if err != nil {
		t.Fatal(err)
	}
	defer ipcp.Close()
	q := qos.Raw()
	q.Encrypt = true
	f, err := newFlow(ctrl.FlowInfo{ID: 1, Name: "x", QoS: q, MTU: 1400}, p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.closeRaw()
	done := make(chan error, 1)
	go func() { done <- f.start(func() error { return f.serverHandshake(options{}, &hsCounters{}) }) }()
	c, _ := seal.NewClient(nil, 0)
	ipcp.Write(c.Hello())
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n, _, err := ipcp.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	peer, err := c.Finish(buf[:n])
	if err != nil {
		t.Fatal(err)
	}
	clk := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	f.sess.SetClock(clk)
	peer.SetClock(clk)
	f.SetReadDeadline(time.Now().Add(5 * time.Second))
	ipcp.SetReadDeadline(time.Now().Add(5 * time.Second))

	epoch := func(p []byte) uint64 { return binary.BigEndian.Uint64(p[1:seal.HeaderLen]) / seal.RekeyAfter }
	for i := range 6 {
		// The flow writes: the peer opens, and sees the epoch step.
		msg := fmt.Appendf(nil, "down %d", i)
		if _, err := f.Write(msg); err != nil {
			t.Fatal(err)
		}
		n, _, err := ipcp.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		if e := epoch(buf[:n]); e != uint64(i) {
			t.Fatalf("write %d sealed in epoch %d", i, e)
		}
		if got, err := peer.Open(buf[:n]); err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("peer opened %q, %v; want %q", got, err, msg)
		}
		// The peer writes: the flow reads.
		msg = fmt.Appendf(nil, "up %d", i)
		pkt, _ := peer.Seal(nil, msg)
		ipcp.Write(pkt)
		if m, err := f.Read(buf); err != nil || string(buf[:m]) != string(msg) {
			t.Fatalf("read %q, %v; want %q", buf[:m], err, msg)
		}
		clk.Advance(seal.RekeyAfterTime)
	}
	// An outage of ten epochs: the peer seals, nothing arrives.
	for range 10 {
		peer.Seal(nil, []byte("lost"))
		clk.Advance(seal.RekeyAfterTime)
	}
	pkt, _ := peer.Seal(nil, []byte("back"))
	ipcp.Write(pkt)
	if m, err := f.Read(buf); err != nil || string(buf[:m]) != "back" {
		t.Fatalf("after the outage: read %q, %v", buf[:m], err)
	}
	st := f.Crypto()
	if st.Opened != 7 || st.Dropped() != 0 || st.Rekeys != 5+16 {
		t.Fatalf("flow's counters: %v", st)
	}
}
