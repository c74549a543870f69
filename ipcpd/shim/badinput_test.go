package shim_test

import (
	"context"
	"encoding/binary"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ouro-net/ouro/ipcpd/eth/frame"
	"github.com/ouro-net/ouro/ipcpd/shim"
	"github.com/ouro-net/ouro/ipcpd/shim/wire"
	"github.com/ouro-net/ouro/lib/clock"
	"github.com/ouro-net/ouro/lib/namehash"
	"github.com/ouro-net/ouro/lib/qos"
)

// Every kind of bad frame is counted under its reason and dropped.
func TestBadFramesCounted(t *testing.T) {
	h := &hub{}
	a := newStation(t, h, 0xa, clock.Real(), quick())
	b := newStation(t, h, 0xb, clock.Real(), quick())
	b.eng.Register("srv")
	appA, _, err := a.alloc(context.Background(), "srv")
	if err != nil {
		t.Fatal(err)
	}
	defer appA.Close()
	b.acceptOne(t)
	stranger := mac(0xee)
	data := func(dst, src frame.MAC, et, eid uint16, p string) []byte {
		return frame.Append(nil, frame.Header{Dst: dst, Src: src, EtherType: et, EID: eid}, []byte(p))
	}
	good := data(a.mac, b.mac, etype, 1, "x") // eid 1: A's first flow
	truncated := append([]byte{}, good...)
	binary.BigEndian.PutUint16(truncated[16:], 200)
	badVersion := mgmtFrame(a.mac, b.mac, wire.Msg{Type: wire.Query})
	badVersion[frame.HeaderLen] = 2 // eth-dix and tap before the shared codec
	unknownCode := mgmtFrame(a.mac, b.mac, wire.Msg{Type: wire.Dealloc})
	unknownCode[frame.HeaderLen+1] = 42
	c, m := &a.eng.Counters, &a.eng.Medium
	cases := []struct {
		name    string
		frame   []byte
		counter *atomic.Uint64
	}{
		{"empty", nil, &c.Short},
		{"runt", good[:10], &c.Short},
		{"no shim header", good[:16], &c.Short},
		{"truncated", truncated, &c.Short},
		{"IPv6", data(a.mac, b.mac, 0x86dd, 1, "x"), &m.OtherEtherType},
		{"for another station", data(stranger, b.mac, etype, 1, "x"), &m.NotForUs},
		{"data to broadcast", data(frame.Broadcast(), b.mac, etype, 1, "x"), &m.NotForUs},
		{"own frame", data(a.mac, a.mac, etype, 1, "x"), &m.Own},
		{"group source", data(a.mac, frame.Broadcast(), etype, 1, "x"), &m.BadSource},
		{"unknown eid", data(a.mac, b.mac, etype, 999, "x"), &c.UnknownEID},
		{"wrong peer", data(a.mac, stranger, etype, 1, "x"), &c.WrongPeer},
		{"bad version", badVersion, &c.BadVersion},
		{"unknown code", unknownCode, &c.BadType},
		{"malformed mgmt", data(a.mac, b.mac, etype, frame.MgmtEID, string([]byte{wire.Version, 5, 0})), &c.Short},
		{"eid beyond 16 bits", mgmtFrame(a.mac, b.mac, wire.Msg{Type: wire.Dealloc, Src: 5, Dst: 1 << 16}), &c.Malformed},
		{"zero eid", mgmtFrame(a.mac, b.mac, wire.Msg{Type: wire.Dealloc, Src: 5}), &c.Malformed},
		{"mgmt for another station", mgmtFrame(stranger, b.mac, wire.Msg{Type: wire.Query}), &m.NotForUs},
		{"unsolicited reply", mgmtFrame(a.mac, stranger, wire.Msg{Type: wire.QueryReply, Hash: namehash.Of("x")}), &c.Unsolicited},
		{"stale dealloc", mgmtFrame(a.mac, stranger, wire.Msg{Type: wire.Dealloc, Src: 5, Dst: 1}), &c.StaleDeallocs},
		{"late reply", mgmtFrame(a.mac, stranger, wire.Msg{Type: wire.AllocResp, Src: 5, Dst: 77}), &c.LateReplies},
		{"stale confirm", mgmtFrame(a.mac, stranger, wire.Msg{Type: wire.Confirm, Src: 5, Dst: 1}), &c.StaleConfirms},
	}
	for _, tc := range cases {
		before := tc.counter.Load()
		a.eng.Input(tc.frame)
		if got := tc.counter.Load(); got != before+1 {
			t.Errorf("%s: counter %d -> %d", tc.name, before, got)
		}
	}
	// The flow still works, and got nothing of the above.
	a.eng.Input(good)
	expectData(t, appA, "x")
	t.Logf("counters: %s", c.String())
}

// A query flood is answered only within the rate limit; the rest is
// counted. Virtual time refills the bucket.
func TestQueryFlood(t *testing.T) {
	base := runtime.NumGoroutine()
	clk := clock.NewFake(time.Unix(1000, 0))
	h := &hub{}
	b := newStation(t, h, 0xb, clk, shim.Timers{})
	b.eng.Register("srv")
	q := mgmtFrame(frame.Broadcast(), mac(0xee), wire.Msg{Type: wire.Query, Hash: namehash.Of("srv")})
	other := mgmtFrame(frame.Broadcast(), mac(0xee), wire.Msg{Type: wire.Query, Hash: namehash.Of("other")})
	for range 10000 {
		b.eng.Input(q)
		b.eng.Input(other)
	}
	// One source gets half the burst and a tenth of the rate.
	c := &b.eng.Counters
	burst := shim.DefaultQueryBurst / 2
	if c.QueriesIn.Load() != 20000 || c.QueriesAnswered.Load() != uint64(burst) ||
		c.QueriesLimited.Load() != uint64(10000-burst) {
		t.Fatalf("after flood: %s", c.String())
	}
	// Another station is still answered.
	b.eng.Input(mgmtFrame(frame.Broadcast(), mac(0xef), wire.Msg{Type: wire.Query, Hash: namehash.Of("srv")}))
	if c.QueriesAnswered.Load() != uint64(burst)+1 {
		t.Fatalf("a second station is not answered: %s", c.String())
	}
	clk.Advance(time.Second)
	for range 2000 {
		b.eng.Input(q)
	}
	if c.QueriesAnswered.Load() != uint64(2*burst)+1 {
		t.Fatalf("after a second: %s", c.String())
	}
	b.eng.Close()
	noLeak(t, base)
}

// A repeated allocation request (our reply was lost) gets the same
// answer again, not a second flow.
func TestRepeatedAllocRequest(t *testing.T) {
	h := &hub{}
	b := newStation(t, h, 0xb, clock.Real(), quick())
	sniffer := h.port()
	b.eng.Register("srv")
	req := mgmtFrame(b.mac, mac(0xee), wire.Msg{Type: wire.AllocReq, Src: 33, Hash: namehash.Of("srv"), QoS: qos.Raw()})
	var replies []wire.Msg
	for range 3 {
		b.eng.Input(req)
		replies = append(replies, nextFinal(t, sniffer))
		eventually(t, "flow up", func() bool { return flowCount(b) == 1 })
	}
	b.acceptOne(t)
	for _, m := range replies {
		if m.Type != wire.AllocResp || m.Status != wire.OK || m.Dst != 33 || m.Src != replies[0].Src {
			t.Fatalf("replies %+v", replies)
		}
	}
	if len(b.accepted) != 0 {
		t.Fatal("a repeated request made a second flow")
	}
	// The requester deallocates.
	b.eng.Input(mgmtFrame(b.mac, mac(0xee), wire.Msg{Type: wire.Dealloc, Src: 33, Dst: replies[0].Src}))
	eventually(t, "flow gone", func() bool { return flowCount(b) == 0 })
}

// A positive reply after the requester gave up is answered with a
// deallocation, so the replier's end does not linger.
func TestLateReplyDeallocates(t *testing.T) {
	h := &hub{}
	a := newStation(t, h, 0xa, clock.Real(), quick())
	sniffer := h.port()
	a.eng.Input(mgmtFrame(a.mac, mac(0xee), wire.Msg{Type: wire.AllocResp, Src: 5, Dst: 77, Status: wire.OK}))
	hd, p, _ := frame.Decode(sniffer.next(t))
	m, err := decodeMgmt(p)
	if err != nil || hd.Dst != mac(0xee) || m.Type != wire.Dealloc || m.Src != 77 || m.Dst != 5 {
		t.Fatalf("answer %+v %+v %v", hd, m, err)
	}
}

// nextFinal returns the next alloc response on the segment that is not
// "pending" (sent at once to every new request).
func nextFinal(t *testing.T, sniffer *port) wire.Msg {
	t.Helper()
	for {
		_, p, _ := frame.Decode(sniffer.next(t))
		m, err := decodeMgmt(p)
		if err != nil || m.Type != wire.AllocResp {
			t.Fatalf("answer %+v %v", m, err)
		}
		if m.Status != wire.Pending {
			return m
		}
	}
}

// Incoming allocations beyond MaxPending are refused as busy while the
// IRMd is slow; the ones waiting complete when it answers.
func TestArrivalsBounded(t *testing.T) {
	h := &hub{}
	b := newStation(t, h, 0xb, clock.Real(), shim.Timers{MaxPending: 2})
	b.hold = make(chan struct{})
	b.eng.Register("srv")
	sniffer := h.port()
	result := func() wire.Msg { return nextFinal(t, sniffer) }
	for i := range 10 {
		b.eng.Input(mgmtFrame(b.mac, mac(0xee), wire.Msg{Type: wire.AllocReq, Src: uint32(i + 1), Hash: namehash.Of("srv")}))
	}
	for range 8 {
		if m := result(); m.Status != wire.Busy {
			t.Fatalf("answer %+v, want busy", m)
		}
	}
	close(b.hold)
	for range 2 {
		if m := result(); m.Status != wire.OK {
			t.Fatalf("answer %+v, want ok", m)
		}
	}
	b.acceptOne(t)
	b.acceptOne(t)
	if flowCount(b) != 2 || b.eng.Counters.AllocsRefused.Load() != 8 {
		t.Fatalf("flows %d, refused %d", flowCount(b), b.eng.Counters.AllocsRefused.Load())
	}
}

// The receive path does not allocate per frame.
func TestInputNoAlloc(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	h := &hub{}
	a := newStation(t, h, 0xa, clock.Real(), quick())
	b := newStation(t, h, 0xb, clock.Real(), quick())
	b.eng.Register("srv")
	appA, _, err := a.alloc(context.Background(), "srv")
	if err != nil {
		t.Fatal(err)
	}
	defer appA.Close()
	b.acceptOne(t)
	good := frame.Append(nil, frame.Header{Dst: a.mac, Src: b.mac, EtherType: etype, EID: 1}, make([]byte, 64))
	garbage := good[:17]
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		buf := make([]byte, 2048)
		for {
			if _, _, err := appA.Read(buf); err != nil {
				return
			}
		}
	}()
	n := testing.AllocsPerRun(1000, func() {
		a.eng.Input(good)
		a.eng.Input(garbage)
	})
	appA.Close()
	<-drained
	if n != 0 {
		t.Fatalf("%v allocations per frame", n)
	}
}
