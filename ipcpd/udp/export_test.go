package udp

import (
	"github.com/ouro-net/ouro/ipcpd/shim/admit"
	"github.com/ouro-net/ouro/ipcpd/shim/wire"
	"github.com/ouro-net/ouro/lib/namehash"
	"github.com/ouro-net/ouro/lib/qos"
)

// AllocReqFrame is an alloc request for name from endpoint eid offering
// data port dport, for the tests of package udp_test.
func AllocReqFrame(eid uint32, name string, dport uint16) []byte {
	return enc(wire.Msg{Type: wire.AllocReq, Src: eid, Hash: namehash.Of(name), MTU: 1400, Port: dport, QoS: qos.Raw()})
}

// ConfirmFor returns the confirmation of an "ok" answer b, if it is one.
func ConfirmFor(b []byte) ([]byte, bool) {
	var m wire.Msg
	if dec(b, &m) != nil || m.Type != wire.AllocResp || m.Status != wire.OK {
		return nil, false
	}
	return enc(wire.Msg{Type: wire.Confirm, Dst: m.Src, Src: m.Dst}), true
}

// Per-source caps, for the tests of package udp_test.
const (
	TestMaxFlowsPerPeer   = admit.MaxFlowsPerPeer
	TestMaxPendingPerPeer = admit.MaxPendingPerPeer
)

// enc is m as a management frame.
func enc(m wire.Msg) []byte { return mgmtFrame(nil, &m) }

// dec parses management frame b into m.
func dec(b []byte, m *wire.Msg) error {
	eid, p, err := splitFrame(b)
	if err != nil {
		return err
	}
	if eid != 0 {
		return wire.ErrMalformed
	}
	return m.Decode(p)
}
