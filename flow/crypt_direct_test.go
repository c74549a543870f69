package flow_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/ouro-net/ouro/flow"
	"github.com/ouro-net/ouro/internal/testenv"
	"github.com/ouro-net/ouro/lib/ctrl"
	"github.com/ouro-net/ouro/lib/qos"
)

// TestEncryptedUDPFlowGoesDirect: an encrypted flow over a udp4 layer
// takes the path a plain one takes: after the key exchange both ends
// send and receive on their direct data sockets, so 200 round trips
// cost each end one sealed packet out and one opened packet in per
// round trip and nothing else, and neither IPCP carries any of them
// (only the handshake may cross the allocating side's IPCP, before
// that side took its socket).
func TestEncryptedUDPFlowGoesDirect(t *testing.T) {
	h, g := udpHosts(t, "x-direct", "p-direct")
	const rounds = 200
	for _, c := range []struct {
		name string
		q    qos.Spec
	}{{"p-direct", qos.Raw()}, {"x-direct", encrypted(qos.Raw())}} {
		a, b, err := pairOpts(t, h, g, c.name, c.q, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		a.SetDeadline(time.Now().Add(10 * time.Second))
		b.SetDeadline(time.Now().Add(10 * time.Second))
		msg := bytes.Repeat([]byte{0x5a}, 1000)
		buf := make([]byte, 2048)
		for i := range rounds {
			msg[0] = byte(i)
			if _, err := a.Write(msg); err != nil {
				t.Fatal(err)
			}
			n, err := b.Read(buf)
			if err != nil || !bytes.Equal(buf[:n], msg) {
				t.Fatalf("%s: probe %d: %d bytes, %v", c.name, i, n, err)
			}
			if _, err := b.Write(buf[:n]); err != nil {
				t.Fatal(err)
			}
			if n, err = a.Read(buf); err != nil || !bytes.Equal(buf[:n], msg) {
				t.Fatalf("%s: reply %d: %d bytes, %v", c.name, i, n, err)
			}
		}
		if !flow.IsDirect(a) || !flow.IsDirect(b) {
			t.Fatalf("%s: direct data socket at the allocating end %v, at the accepting end %v", c.name, flow.IsDirect(a), flow.IsDirect(b))
		}
		if c.q.Encrypt {
			for end, f := range map[string]*flow.Flow{"allocating": a, "accepting": b} {
				if st := f.Crypto(); st.Sealed != rounds || st.Opened != rounds || st.Dropped() != 0 || st.Rekeys != 0 {
					t.Fatalf("%s end: %v, want %d sealed and opened, nothing else", end, st, rounds)
				}
			}
		}
		// Through the IPCPs: nothing arrived on either IPCP's socket as
		// data, and at most the handshake went out through one.
		var through uint64
		for _, host := range []*testenv.Host{h, g} {
			st := shimStatus(t, host, "udp")
			if st.Counters["rx-data"] != 0 {
				t.Fatalf("%s: %d data packets came in through an IPCP's socket", c.name, st.Counters["rx-data"])
			}
			for _, sf := range st.Flows {
				if sf.Name == c.name {
					if !sf.Direct {
						t.Fatalf("%s: the IPCP reports the flow indirect: %+v", c.name, sf)
					}
					through += sf.PktsIn + sf.PktsOut
				}
			}
		}
		t.Logf("%s: %d packets crossed the IPCPs", c.name, through)
		if through > 1 {
			t.Fatalf("%s: %d packets of %d round trips crossed the IPCPs", c.name, through, rounds)
		}
		a.Close()
		b.Close()
	}
}

// shimStatus returns the status of host's shim IPCP in layer.
func shimStatus(t *testing.T, host *testenv.Host, layer string) *ctrl.ShimStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := host.Client().LayerShow(ctx, layer)
	if err != nil || info.Status == nil || info.Status.Shim == nil {
		t.Fatalf("layer show %s: %+v, %v", layer, info, err)
	}
	return info.Status.Shim
}

// TestForwardingFlowsMakeRawCalls: the direct data sockets of flows
// allocated and accepted WithForwarding make raw system calls; an
// application's make scheduled ones (lib/pipe says why); both carry a
// ping-pong.
func TestForwardingFlowsMakeRawCalls(t *testing.T) {
	h, g := udpHosts(t, "fwd-app", "fwd-ipcp")
	for _, c := range []struct {
		name string
		opts []flow.Option
		raw  bool
	}{{"fwd-app", nil, false}, {"fwd-ipcp", []flow.Option{flow.WithForwarding()}, true}} {
		a, b, err := pairOpts(t, h, g, c.name, qos.Raw(), c.opts, c.opts)
		if err != nil {
			t.Fatal(err)
		}
		a.SetDeadline(time.Now().Add(10 * time.Second))
		b.SetDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 64)
		for i := range 20 {
			if _, err := a.Write([]byte{byte(i)}); err != nil {
				t.Fatal(err)
			}
			if n, err := b.Read(buf); err != nil || n != 1 || buf[0] != byte(i) {
				t.Fatalf("%s: packet %d: %d bytes, %v", c.name, i, n, err)
			}
			if _, err := b.Write(buf[:1]); err != nil {
				t.Fatal(err)
			}
			if n, err := a.Read(buf); err != nil || n != 1 || buf[0] != byte(i) {
				t.Fatalf("%s: reply %d: %d bytes, %v", c.name, i, n, err)
			}
		}
		if !flow.IsDirect(a) || !flow.IsDirect(b) {
			t.Fatalf("%s: not direct at both ends (%v, %v)", c.name, flow.IsDirect(a), flow.IsDirect(b))
		}
		if ra, rb := flow.RawCalls(a), flow.RawCalls(b); ra != c.raw || rb != c.raw {
			t.Fatalf("%s: raw calls at the allocating end %v, at the accepting end %v; want %v", c.name, ra, rb, c.raw)
		}
	}
}
