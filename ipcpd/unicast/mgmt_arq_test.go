package unicast

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/ouro-net/ouro/lib/clock"
)

// The management ARQ (mgmt.go) in virtual time: acknowledgement,
// retransmission with backoff, abandonment, the window and forgetting a
// neighbour. The tests drive mgmtARQ directly with a fake clock.

func seqOf(f []byte) uint32 { return binary.BigEndian.Uint32(f[1:]) }

func ackBody(seqs ...uint32) []byte {
	var b []byte
	for _, s := range seqs {
		b = binary.BigEndian.AppendUint32(b, s)
	}
	return b
}

// TestMgmtARQAck: frames are numbered per neighbour from 1 and laid out
// kind, sequence, payload; an acknowledged frame is not sent again, an
// unacknowledged one is, after mgmtRTO; acks for unknown frames or
// neighbours, and a trailing partial number, change nothing.
func TestMgmtARQAck(t *testing.T) {
	fc := clock.NewFake(time.Unix(1000, 0))
	m := newMgmtARQ(fc)
	f1 := m.frame(7, kindRouting, []byte("lsu"))
	f2 := m.frame(7, kindDir, []byte("dir"))
	g1 := m.frame(8, kindRouting, nil)
	if f1[0] != kindRouting || seqOf(f1) != 1 || string(f1[1+mgmtSeqLen:]) != "lsu" || seqOf(f2) != 2 || seqOf(g1) != 1 {
		t.Fatalf("frames %x %x %x", f1, f2, g1)
	}
	m.ack(7, append(ackBody(1, 99), 0, 0)) // 1, an unknown 99, a partial number
	m.ack(9, ackBody(1))                   // no such neighbour
	if sent, _, acked, _ := m.counters(); sent != 3 || acked != 1 {
		t.Fatalf("sent %d acked %d, want 3 1", sent, acked)
	}
	fc.Advance(mgmtRTO - time.Nanosecond)
	if d := m.due(); len(d) != 0 {
		t.Fatalf("due before mgmtRTO: %v", d)
	}
	fc.Advance(time.Nanosecond)
	d := m.due()
	if len(d[7]) != 1 || seqOf(d[7][0]) != 2 || len(d[8]) != 1 || seqOf(d[8][0]) != 1 {
		t.Fatalf("due at mgmtRTO: %v, want 7's frame 2 and 8's frame 1", d)
	}
	m.ack(7, ackBody(2))
	m.ack(8, ackBody(1))
	if m.pending() {
		t.Fatal("pending after every frame was acknowledged")
	}
	if sent, resent, acked, abandoned := m.counters(); sent != 3 || resent != 2 || acked != 3 || abandoned != 0 {
		t.Fatalf("counters %d %d %d %d, want 3 2 3 0", sent, resent, acked, abandoned)
	}
}

// TestMgmtARQBackoff: an unanswered frame goes again after 100 ms, then
// 200, 400, 800 ms, then every second (mgmtRTOMax), and is abandoned at
// its mgmtTries-th deadline: 11 copies more, then nothing.
func TestMgmtARQBackoff(t *testing.T) {
	fc := clock.NewFake(time.Unix(1000, 0))
	m := newMgmtARQ(fc)
	m.frame(7, kindRouting, nil)
	start := fc.Now()
	var at []time.Duration
	for step := 0; step < 20000 && m.pending(); step++ { // 20 s in 1 ms steps
		fc.Advance(time.Millisecond)
		if d := m.due(); len(d[7]) == 1 {
			at = append(at, fc.Now().Sub(start))
		}
	}
	var want []time.Duration
	for _, ms := range []int{100, 300, 700, 1500, 2500, 3500, 4500, 5500, 6500, 7500, 8500} {
		want = append(want, time.Duration(ms)*time.Millisecond)
	}
	if len(at) != len(want) {
		t.Fatalf("resent at %v, want %v", at, want)
	}
	for i := range want {
		if at[i] != want[i] {
			t.Fatalf("resent at %v, want %v", at, want)
		}
	}
	if m.pending() || fc.Now().Sub(start) != 9500*time.Millisecond {
		t.Fatalf("abandoned at %v (pending %v), want at 9.5 s", fc.Now().Sub(start), m.pending())
	}
	if _, resent, _, abandoned := m.counters(); resent != 11 || abandoned != 1 {
		t.Fatalf("resent %d abandoned %d, want 11 1", resent, abandoned)
	}
}

// TestMgmtARQWindow: at most mgmtWindow frames wait per neighbour; the
// oldest beyond it is abandoned (the refresh repairs), and an ack for it
// changes nothing. Forgetting a neighbour abandons what waits for it.
// Sequence numbers skip 0 when they wrap.
func TestMgmtARQWindow(t *testing.T) {
	fc := clock.NewFake(time.Unix(1000, 0))
	m := newMgmtARQ(fc)
	for range mgmtWindow + 5 {
		m.frame(7, kindDir, nil)
	}
	if n := len(m.peers[7].unacked); n != mgmtWindow {
		t.Fatalf("%d frames wait, want the window, %d", n, mgmtWindow)
	}
	if _, ok := m.peers[7].unacked[5]; ok {
		t.Fatal("frame 5 kept beyond the window")
	}
	if _, ok := m.peers[7].unacked[6]; !ok {
		t.Fatal("frame 6, the oldest in the window, dropped")
	}
	m.ack(7, ackBody(1))
	if _, _, acked, abandoned := m.counters(); acked != 0 || abandoned != 5 {
		t.Fatalf("acked %d abandoned %d, want 0 5", acked, abandoned)
	}
	m.forget(7)
	if _, _, _, abandoned := m.counters(); abandoned != 5+mgmtWindow || m.pending() {
		t.Fatalf("after forget: abandoned %d pending %v", abandoned, m.pending())
	}
	m.peers[8] = &mgmtPeer{next: ^uint32(0), unacked: map[uint32]*mgmtOut{}}
	if s := seqOf(m.frame(8, kindDir, nil)); s != 1 {
		t.Fatalf("after the largest number came %d, want 1 (0 is skipped)", s)
	}
}
