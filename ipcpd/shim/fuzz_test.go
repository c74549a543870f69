package shim_test

import (
	"testing"
	"time"

	"github.com/ouro-net/ouro/ipcpd/eth/frame"
	"github.com/ouro-net/ouro/ipcpd/shim/wire"
	"github.com/ouro-net/ouro/lib/clock"
	"github.com/ouro-net/ouro/lib/namehash"
	"github.com/ouro-net/ouro/lib/qos"
)

// FuzzInput feeds arbitrary frames to a live engine: nothing panics.
// Allocation requests are refused (the fake IRMd has no acceptor), so
// fuzzing does not pile up flows.
func FuzzInput(f *testing.F) {
	h := &hub{}
	s := newStation(f, h, 0xa, clock.Real(), quick())
	s.refuse.Store(true)
	s.eng.Register("srv")
	peer := mac(0xb)
	for _, m := range []wire.Msg{
		{Type: wire.Query, Hash: namehash.Of("srv")},
		{Type: wire.QueryReply, Hash: namehash.Of("srv")},
		{Type: wire.AllocReq, Src: 3, Hash: namehash.Of("srv"), QoS: qos.Reliable()},
		{Type: wire.AllocResp, Src: 3, Dst: 1},
		{Type: wire.Dealloc, Src: 3, Dst: 1},
		{Type: wire.Confirm, Src: 3, Dst: 1},
	} {
		f.Add(mgmtFrame(s.mac, peer, m))
	}
	f.Add(frame.Append(nil, frame.Header{Dst: s.mac, Src: peer, EtherType: etype, EID: 1}, []byte("data")))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		s.eng.Input(b)
	})
}

// FuzzInputAccepting is FuzzInput against a station that accepts every
// flow, with small caps: the admission, confirmation and expiry paths
// see arbitrary input, and the caps bound what the fuzzer can pile up.
func FuzzInputAccepting(f *testing.F) {
	h := &hub{}
	tm := quick()
	tm.MaxFlows, tm.MaxFlowsPerPeer, tm.MaxPending, tm.MaxPendingPerPeer = 8, 4, 4, 2
	tm.ConfirmTimeout = 50 * time.Millisecond
	s := newStation(f, h, 0xa, clock.Real(), tm)
	s.eng.Register("srv")
	done := make(chan struct{})
	f.Cleanup(func() { close(done) })
	go func() { // the application: takes flows and lets them go
		for {
			select {
			case p := <-s.accepted:
				p.Close()
			case <-done:
				return
			}
		}
	}()
	peer := mac(0xb)
	for _, m := range []wire.Msg{
		{Type: wire.AllocReq, Src: 3, Hash: namehash.Of("srv"), QoS: qos.Raw()},
		{Type: wire.Confirm, Src: 3, Dst: 1},
		{Type: wire.Confirm, Src: 3, Dst: 2},
		{Type: wire.Dealloc, Src: 3, Dst: 1},
	} {
		f.Add(mgmtFrame(s.mac, peer, m))
	}
	f.Add(frame.Append(nil, frame.Header{Dst: s.mac, Src: peer, EtherType: etype, EID: 1}, []byte("data")))
	f.Fuzz(func(t *testing.T, b []byte) {
		s.eng.Input(b)
		flows, pending, _, _ := s.eng.Usage(peer)
		if flows > tm.MaxFlows || pending > tm.MaxPending {
			t.Fatalf("caps broken: %d flows, %d pending", flows, pending)
		}
	})
}
