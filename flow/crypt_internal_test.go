package flow

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/ouro-net/ouro/lib/ctrl"
	"github.com/ouro-net/ouro/lib/pipe"
	"github.com/ouro-net/ouro/lib/qos"
	"github.com/ouro-net/ouro/lib/seal"
)

// TestServerHandshakeDropsGarbage plays a stranger on the IPCP side of
// an encrypted flow's channel: garbage, a truncated hello and an
// oversized one are dropped and counted, a genuine hello is answered,
// and afterwards a repeated hello is answered again (the reply may have
// been lost) while a replayed sealed packet, a flipped byte and a
// stray reply are dropped and counted and the flow still delivers.
func TestServerHandshakeDropsGarbage(t *testing.T) {
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
	hello := c.Hello()
	for _, junk := range [][]byte{[]byte("GET / HTTP/1.0"), hello[:100], append(bytes.Clone(hello), 1, 2)} {
		ipcp.Write(junk)
	}
	ipcp.Write(hello)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n, _, err := ipcp.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := c.Finish(buf[:n])
	if err != nil {
		t.Fatal(err)
	}
	if d := f.hsDrops.Load(); d != 3 {
		t.Fatalf("%d handshake messages dropped, want 3", d)
	}
	pkt, _ := cli.Seal(nil, []byte("first"))
	flipped, _ := cli.Seal(nil, []byte("forged"))
	flipped[len(flipped)-3] ^= 1
	ipcp.Write(hello)   // repeated: answered again
	ipcp.Write(pkt)     // delivered
	ipcp.Write(pkt)     // replay: dropped
	ipcp.Write(flipped) // forged: dropped
	ipcp.Write(buf[:n]) // a stray reply: dropped
	ipcp.Write(pkt[:5]) // truncated: dropped
	last, _ := cli.Seal(nil, []byte("second"))
	ipcp.Write(last)
	f.SetReadDeadline(time.Now().Add(5 * time.Second))
	for _, want := range []string{"first", "second"} {
		m, err := f.Read(buf)
		if err != nil || string(buf[:m]) != want {
			t.Fatalf("read %q, %v; want %q", buf[:m], err, want)
		}
	}
	n2, _, err := ipcp.Read(buf)
	if err != nil || n2 != n {
		t.Fatalf("repeated hello: answer of %d bytes, %v", n2, err)
	}
	st := f.Crypto()
	if st.Opened != 2 || st.Replayed != 1 || st.Auth != 1 || st.Short != 1 || st.Handshake != 3+2 {
		t.Fatalf("stats %+v", *st)
	}
}

// TestServerHandshakeDeadline: a stranger who allocates and then says
// nothing costs the server one goroutine until HandshakeTimeout.
func TestServerHandshakeDeadline(t *testing.T) {
	if testing.Short() {
		t.Skip("waits HandshakeTimeout")
	}
	p, ipcp, err := pipe.Pair()
	if err != nil {
		t.Fatal(err)
	}
	defer ipcp.Close()
	q := qos.Raw()
	q.Encrypt = true
	f, _ := newFlow(ctrl.FlowInfo{ID: 1, Name: "x", QoS: q, MTU: 1400}, p)
	start := time.Now()
	err = f.start(func() error { return f.serverHandshake(options{}, &hsCounters{}) })
	if err == nil || !isTimeout(errors.Unwrap(err)) && time.Since(start) < HandshakeTimeout {
		t.Fatalf("silent client: %v after %v", err, time.Since(start))
	}
}

// TestServerHandshakePSKFirstMessage plays strangers on the IPCP side
// of flows to a listener with a layer secret: garbage, a truncated
// hello, a hello under another secret and a member's hello replayed on
// a second flow each end the exchange at once without an answer, each
// counted under its reason; the member's own hello is answered.
func TestServerHandshakePSKFirstMessage(t *testing.T) {
	psk, _ := seal.NewPSK(bytes.Repeat([]byte{1}, seal.SecretLen), nil)
	other, _ := seal.NewPSK(bytes.Repeat([]byte{2}, seal.SecretLen), nil)
	o := options{psk: func() *seal.PSK { return psk }}
	var hc hsCounters
	member, _ := seal.NewClientPSK(psk, nil, 0)
	stranger, _ := seal.NewClientPSK(other, nil, 0)
	run := func(first []byte) ([]byte, error) {
		p, ipcp, err := pipe.Pair()
		if err != nil {
			t.Fatal(err)
		}
		defer ipcp.Close()
		q := qos.Raw()
		q.Encrypt = true
		f, _ := newFlow(ctrl.FlowInfo{ID: 1, Name: "x", QoS: q, MTU: 1400}, p)
		defer f.closeRaw()
		ipcp.Write(first)
		err = f.start(func() error { return f.serverHandshake(o, &hc) })
		if err != nil {
			return nil, err
		}
		buf := make([]byte, 4096)
		n, _, rerr := ipcp.Read(buf)
		if rerr != nil {
			t.Fatal(rerr)
		}
		if !f.Authenticated() {
			t.Fatal("exchange passed but the flow is not authenticated")
		}
		return buf[:n], nil
	}
	for _, c := range []struct {
		what  string
		first []byte
	}{
		{"garbage", []byte("GET / HTTP/1.0")},
		{"truncated", member.Hello()[:200]},
		{"oversized", append(bytes.Clone(member.Hello()), 0)},
		{"other secret", stranger.Hello()},
	} {
		if _, err := run(c.first); err == nil {
			t.Fatalf("%s: exchange passed", c.what)
		}
	}
	reply, err := run(member.Hello())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := member.Finish(reply); err != nil {
		t.Fatal(err)
	}
	if _, err := run(member.Hello()); !errors.Is(err, seal.ErrHelloReplay) {
		t.Fatalf("replayed hello on a new flow: %v", err)
	}
	if a, r, m := hc.auth.Load(), hc.replayed.Load(), hc.malformed.Load(); a != 1 || r != 1 || m != 3 {
		t.Fatalf("counted auth %d replayed %d malformed %d, want 1 1 3", a, r, m)
	}
}
