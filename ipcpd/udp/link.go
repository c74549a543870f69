package udp

import (
	"net/netip"
	"os"
	"sync/atomic"

	"github.com/ouro-net/ouro/ipcpd/shim"
	"github.com/ouro-net/ouro/lib/pipe"
)

// medium is the IPCP as the engine's Link: the socket, the peers, the
// data path and the direct data sockets.
type medium IPCP

// uflow is a flow of the engine on this medium.
type uflow = shim.Flow[netip.AddrPort]

// dflow is a flow's direct data socket (see direct.go), the engine's
// Flow.Medium.
type dflow struct {
	// data is the flow's data socket until it is handed to the
	// application, dport its port, offered to the peer; direct is the
	// IPCP's copy of it once handed over.
	data   *os.File
	dport  uint16
	direct atomic.Pointer[pipe.DatagramWriter]
}

// ShowState says "direct" for a flow whose data bypasses the IPCP.
func (d *dflow) ShowState() string {
	if d.direct.Load() != nil {
		return "direct"
	}
	return ""
}

func direct(fl *uflow) *pipe.DatagramWriter {
	if d, ok := fl.Medium.(*dflow); ok {
		return d.direct.Load()
	}
	return nil
}

// SendMgmt sends one management message (behind its 4 bytes of
// headroom: eid 0) to dst, with the zone a configured peer needs.
func (m *medium) SendMgmt(dst netip.AddrPort, msg []byte) error {
	clear(msg[:eidLen])
	_, err := m.conn.WriteToUDPAddrPort(msg, (*IPCP)(m).canonical(dst))
	return err
}

// Offer opens a data socket for fl and offers its port, if this IPCP
// offers data sockets.
func (m *medium) Offer(fl *uflow) uint16 {
	u := (*IPCP)(m)
	if !u.directOK() {
		return 0
	}
	data, port, err := dataSocket(u.local.Addr())
	if err != nil {
		u.h.Log.Debug("no data socket; the flow stays indirect", "error", err)
		return 0
	}
	fl.Medium = &dflow{data: data, dport: port}
	return port
}

// Agreed hands fl's data socket over if the peer offered one too, and
// says which port the answer offers (0: indirect after all).
func (m *medium) Agreed(fl *uflow, peerPort uint16) uint16 {
	d, ok := fl.Medium.(*dflow)
	if !ok {
		return 0
	}
	if (*IPCP)(m).handOver(fl, d, peerPort) {
		return d.dport
	}
	return 0
}

// Release closes the data socket of a flow that never came up.
func (m *medium) Release(fl *uflow) {
	d, ok := fl.Medium.(*dflow)
	if !ok {
		return
	}
	if d.data != nil {
		d.data.Close()
		d.data = nil
	}
	if own := d.direct.Swap(nil); own != nil {
		own.Close()
	}
}

// Run moves fl's packets to the peer until the flow ends: through the
// data socket's copy (direct), in sendmmsg batches, or one by one.
func (m *medium) Run(fl *uflow) {
	u := (*IPCP)(m)
	switch snd := newSender(u.canonical(fl.Peer)); {
	case direct(fl) != nil:
		u.txDirect(fl)
	case snd != nil:
		u.txBatched(fl, snd)
	default:
		u.txOneByOne(fl)
	}
}

// noZone strips an IPv6 zone, as received source addresses have none.
func noZone(a netip.AddrPort) netip.AddrPort {
	if a.Addr().Zone() == "" {
		return a
	}
	return netip.AddrPortFrom(a.Addr().WithZone(""), a.Port())
}

// canonical maps a received source address to the configured peer it
// is (which keeps the zone sending needs), else returns it unchanged.
func (u *IPCP) canonical(src netip.AddrPort) netip.AddrPort {
	for _, p := range u.peers {
		if noZone(p) == src {
			return p
		}
	}
	return src
}
