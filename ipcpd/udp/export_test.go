package udp

import (
	"github.com/ouro-net/ouro/ipcpd/shim/admit"
	"github.com/ouro-net/ouro/lib/namehash"
	"github.com/ouro-net/ouro/lib/qos"
)

// AllocReqFrame is an alloc request for name from endpoint eid offering
// data port dport, for the tests of package udp_test.
func AllocReqFrame(eid uint32, name string, dport uint16) []byte {
	return (&msg{typ: tAllocReq, src: eid, hash: namehash.Of(name), mtu: 1400, dport: dport, qos: qos.Raw()}).encode(nil)
}

// ConfirmFor returns the confirmation of an "ok" answer b, if it is one.
func ConfirmFor(b []byte) ([]byte, bool) {
	var m msg
	if m.decode(b) != nil || m.typ != tAllocResp || m.status != stOK {
		return nil, false
	}
	return (&msg{typ: tConfirm, dst: m.src, src: m.dst}).encode(nil), true
}

// Per-source caps, for the tests of package udp_test.
const (
	TestMaxFlowsPerPeer   = admit.MaxFlowsPerPeer
	TestMaxPendingPerPeer = admit.MaxPendingPerPeer
)
