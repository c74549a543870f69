package udp

import (
	"errors"
	"net"
	"net/netip"
)

// rxLoop reads the socket until it is closed. u.rxWG counts it.
func (u *IPCP) rxLoop() {
	defer u.rxWG.Done()
	for {
		if err := u.rc.Read(u.rx.fn); err != nil {
			if !errors.Is(err, net.ErrClosed) {
				u.h.Log.Error("receive loop ends", "error", err)
			}
			return
		}
		if u.rx.errno != nil {
			u.eng.Counters.RxErrors.Add(1)
			continue
		}
		for i := 0; i < u.rx.n; i++ {
			b, src, trunc := u.rx.datagram(i)
			u.handle(b, src, trunc)
		}
		u.flushRx()
		u.rx.adapt()
	}
}

// handle dispatches one datagram: data to its flow, management to the
// engine.
func (u *IPCP) handle(b []byte, src netip.AddrPort, trunc bool) {
	c := &u.eng.Counters
	c.FramesIn.Add(1)
	c.BytesIn.Add(uint64(len(b)))
	if trunc {
		u.ctr.rxOversize.Add(1)
		return
	}
	eid, payload, err := splitFrame(b)
	if err != nil {
		c.Short.Add(1)
		return
	}
	if eid != 0 {
		u.deliver(eid, payload, src)
		return
	}
	// Data gathered so far goes before a management message (a
	// deallocation must not overtake the data before it).
	u.flushRx()
	u.eng.Mgmt(src, payload)
}

// deliver gathers a data frame's payload for its flow's application.
func (u *IPCP) deliver(eid uint32, payload []byte, src netip.AddrPort) {
	fl := u.eng.Data(eid, src)
	if fl == nil {
		return
	}
	if len(payload) > fl.MTU {
		fl.App.Drops.Add(1)
		return
	}
	if u.rxPend.fl != fl {
		u.flushRx()
		u.rxPend.fl = fl
	}
	u.rxPend.pkts = append(u.rxPend.pkts, payload)
}

// rxPending gathers the consecutive datagrams of one flow within a
// receive batch, to hand them to its pipe with one system call. Only the
// receive goroutine uses it.
type rxPending struct {
	fl   *uflow
	pkts [][]byte
}

// flushRx writes the gathered datagrams to their flow's pipe.
func (u *IPCP) flushRx() {
	fl, pkts := u.rxPend.fl, u.rxPend.pkts
	u.rxPend.fl, u.rxPend.pkts = nil, pkts[:0]
	if fl == nil || len(pkts) == 0 {
		return
	}
	f := fl.App
	n, _ := f.Pipe.WriteBatch(pkts)
	// Short of all: the application is gone or the flow is ending;
	// its Run sees that on its own Read.
	f.Drops.Add(uint64(len(pkts) - n))
	var bytes uint64
	for _, p := range pkts[:n] {
		bytes += uint64(len(p))
	}
	f.PktsOut.Add(uint64(n))
	f.BytesOut.Add(bytes)
	u.eng.Counters.RxData.Add(uint64(n))
	clear(pkts)
}
