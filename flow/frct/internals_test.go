package frct

import (
	"math"
	"testing"
	"time"

	"github.com/ouro-net/ouro/lib/clock"
	"github.com/ouro-net/ouro/lib/memlink"
)

// The tests in this file drive one Conn in virtual time against a
// scripted peer that reads what the Conn sends and answers with
// hand-made headers, so each mechanism is checked on exact values:
// RTO estimation and backoff (RFC 6298), fast retransmission on
// duplicate ACKs and on SACK evidence, the SACK bitmap the receiver
// sends, and the delayed-ACK bound. None of them depends on the
// congestion controller: it runs as configured by default, except in the
// two RTO tests, whose exact round trips its pacer would disturb.

// scripted is a Conn and the peer end of its lower flow.
type scripted struct {
	t   *testing.T
	c   *Conn
	e   *memlink.End
	fc  *clock.Fake
	cfg Config
	in  chan sent
}

// sent is a packet the Conn sent.
type sent struct {
	h       Header
	payload string
}

// peerWindow is the window the scripted peer advertises.
const peerWindow = 256

func newScripted(t *testing.T, cfg Config) *scripted {
	t.Helper()
	leakCheck(t)
	fc := clock.NewFake(time.Unix(1000, 0))
	cfg.Clock = fc
	cfg.Reliable, cfg.InOrder = true, true
	cfg.PeerTimeout, cfg.Linger = time.Hour, -1 // no keepalive or peer timeout in the way
	la, lb := memlink.NewPair(memlink.Config{Clock: fc, QueueLen: 1 << 12})
	c, err := New(la, cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := &scripted{t: t, c: c, e: lb, fc: fc, cfg: c.cfg, in: make(chan sent, 1024)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1<<16)
		for {
			n, err := lb.ReadPacket(buf)
			if err != nil {
				return
			}
			h, p, err := ParseHeader(buf[:n])
			if err != nil {
				t.Errorf("the Conn sent a malformed packet: %v", err)
				continue
			}
			s.in <- sent{h, string(p)}
		}
	}()
	t.Cleanup(func() {
		c.Close()
		lb.Close()
		<-done
	})
	return s
}

// next returns the next packet the Conn sends (waiting in real time: the
// Conn's goroutines run it).
func (s *scripted) next() sent {
	s.t.Helper()
	select {
	case p := <-s.in:
		return p
	case <-time.After(10 * time.Second):
		s.t.Fatal("the Conn sent nothing")
		return sent{}
	}
}

// none asserts the Conn sends nothing now (within a short real time).
func (s *scripted) none(why string) {
	s.t.Helper()
	select {
	case p := <-s.in:
		s.t.Fatalf("%s: the Conn sent %v seq %d ack %d", why, p.h.Flags, p.h.Seq, p.h.Ack)
	case <-time.After(50 * time.Millisecond):
	}
}

// send writes a header from the peer and waits until the Conn has taken
// it in.
func (s *scripted) send(h Header, payload string) {
	s.t.Helper()
	before := s.c.Stats().PacketsReceived
	if err := s.e.WritePacket(append(h.Append(nil), payload...)); err != nil {
		s.t.Fatal(err)
	}
	eventually(s.t, "the Conn to take the packet", func() bool { return s.c.Stats().PacketsReceived > before })
}

// ack acknowledges everything before a, with SACK bitmap bm if non-zero.
func (s *scripted) ack(a, bm uint32) {
	s.t.Helper()
	h := Header{Flags: FlagAck, Ack: a, Window: peerWindow}
	if bm != 0 {
		h.Flags |= FlagSACK
		h.SACK = bm
	}
	s.send(h, "")
}

// write has the Conn send one message and returns its sequence number.
// When the congestion controller's pacer holds the packet (nothing sent
// yet), virtual time moves on in 1 ms steps until it goes. Under heavy
// load that can race with a send already under way, so the tests that
// need exact round trips run without congestion control, and then time
// never moves here.
func (s *scripted) write(msg string) uint32 {
	s.t.Helper()
	sentBefore := s.c.Stats().DataSent
	werr := make(chan error, 1)
	go func() {
		_, err := s.c.Write([]byte(msg))
		werr <- err
	}()
	var p sent
	for got := false; !got; {
		select {
		case p = <-s.in:
			got = true
		case <-time.After(20 * time.Millisecond):
			if s.cfg.congestionOn() && s.c.Stats().DataSent == sentBefore {
				s.fc.Advance(time.Millisecond)
			}
		}
	}
	if err := <-werr; err != nil {
		s.t.Fatal(err)
	}
	if p.h.Flags&FlagData == 0 || p.payload != msg {
		s.t.Fatalf("wrote %q, the Conn sent %v %q", msg, p.h.Flags, p.payload)
	}
	return p.h.Seq
}

// rfc6298 is the estimator of RFC 6298 section 2 in floating point,
// the reference the Conn's integer arithmetic must match.
type rfc6298 struct {
	srtt, rttvar float64 // seconds
	have         bool
}

func (r *rfc6298) sample(rtt time.Duration, minRTO, maxRTO time.Duration) time.Duration {
	x := rtt.Seconds()
	if !r.have {
		r.srtt, r.rttvar, r.have = x, x/2, true // (2.2)
	} else {
		r.rttvar = (1-0.25)*r.rttvar + 0.25*math.Abs(r.srtt-x) // (2.3), beta = 1/4
		r.srtt = (1-0.125)*r.srtt + 0.125*x                    // alpha = 1/8
	}
	rto := time.Duration((r.srtt + max(1e-6, 4*r.rttvar)) * 1e9) // G = 1 µs
	return min(max(rto, minRTO), maxRTO)                         // (2.4), bounded
}

// near allows the integer nanoseconds of the Conn to drift from the
// floating-point reference by less than the clock granularity G (1 µs).
func near(a, b time.Duration) bool { return (a - b).Abs() < time.Microsecond }

// TestRTOEstimationRFC6298 feeds a scripted sequence of round trips,
// one message at a time, and checks SRTT, RTTVAR and the RTO after each
// against RFC 6298 (first values by hand: 100 ms gives SRTT 100 ms,
// RTTVAR 50 ms, RTO 300 ms; then 140 ms gives 105, 47.5 and 295 ms).
func TestRTOEstimationRFC6298(t *testing.T) {
	// Without congestion control: its pacer would need virtual time to
	// pass while the test scripts exact round trips.
	s := newScripted(t, Config{RTOMin: 100 * time.Millisecond, Congestion: CongestionOff})
	if st := s.c.Stats(); st.RTO != DefaultInitialRTO || st.SRTT != 0 {
		t.Fatalf("before any sample: RTO %v SRTT %v, want the initial RTO %v and no SRTT", st.RTO, st.SRTT, DefaultInitialRTO)
	}
	var ref rfc6298
	ms := func(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }
	rtts := []time.Duration{ms(100), ms(140), ms(60), ms(250), ms(100)}
	for range 30 {
		rtts = append(rtts, ms(1)) // RTTVAR decays: the RTO comes down to RTOMin
	}
	hand := map[int][3]time.Duration{0: {ms(100), ms(50), ms(300)}, 1: {ms(105), ms(47.5), ms(295)}}
	for i, rtt := range rtts {
		seq := s.write("m")
		s.fc.Advance(rtt) // below every RTO on the way: no retransmission
		s.ack(seq+1, 0)
		want := ref.sample(rtt, s.cfg.RTOMin, s.cfg.RTOMax)
		st := s.c.Stats()
		if !near(st.SRTT, time.Duration(ref.srtt*1e9)) || !near(st.RTTVar, time.Duration(ref.rttvar*1e9)) || !near(st.RTO, want) {
			t.Fatalf("after sample %d (%v): SRTT %v RTTVAR %v RTO %v; RFC 6298 gives %v %v %v", i, rtt,
				st.SRTT, st.RTTVar, st.RTO, time.Duration(ref.srtt*1e9), time.Duration(ref.rttvar*1e9), want)
		}
		if h, ok := hand[i]; ok && (!near(st.SRTT, h[0]) || !near(st.RTTVar, h[1]) || !near(st.RTO, h[2])) {
			t.Fatalf("after sample %d: SRTT %v RTTVAR %v RTO %v, want %v %v %v", i, st.SRTT, st.RTTVar, st.RTO, h[0], h[1], h[2])
		}
		t.Logf("rtt %-6v srtt %-12v rttvar %-12v rto %v", rtt, st.SRTT, st.RTTVar, st.RTO)
		if st.Timeouts != 0 || st.Retransmitted != 0 {
			t.Fatalf("retransmitted: %+v", st)
		}
	}
	if st := s.c.Stats(); st.RTO != s.cfg.RTOMin {
		t.Fatalf("RTO %v after many 1 ms samples, want RTOMin %v", st.RTO, s.cfg.RTOMin)
	}
}

// TestRTOBackoffAndKarn: with no answer, each timeout retransmits the
// oldest packet and doubles the RTO up to RTOMax (RFC 6298 5.4-5.6); the
// ACK of a retransmitted packet gives no RTT sample and keeps the
// backoff (Karn's rule, 5.7); the next sample from a packet sent once
// sets SRTT, RTTVAR and RTO afresh and drops the backoff.
func TestRTOBackoffAndKarn(t *testing.T) {
	s := newScripted(t, Config{RTOMax: 2 * time.Second, Congestion: CongestionOff})
	seq := s.write("x")
	rto := DefaultInitialRTO
	for i, want := range []time.Duration{400 * time.Millisecond, 800 * time.Millisecond, 1600 * time.Millisecond, 2 * time.Second, 2 * time.Second} {
		s.fc.Advance(rto - time.Nanosecond)
		s.none("before the RTO")
		s.fc.Advance(time.Nanosecond)
		if p := s.next(); p.h.Flags&FlagData == 0 || p.h.Seq != seq || p.payload != "x" {
			t.Fatalf("timeout %d: the Conn sent %v seq %d, want the retransmission of %d", i+1, p.h.Flags, p.h.Seq, seq)
		}
		eventually(t, "the backoff", func() bool { return s.c.Stats().Timeouts == uint64(i+1) })
		if st := s.c.Stats(); st.RTO != want || st.Retransmitted != uint64(i+1) || st.FastRetransmits != 0 {
			t.Fatalf("timeout %d: RTO %v retransmitted %d fast %d; want RTO %v", i+1, st.RTO, st.Retransmitted, st.FastRetransmits, want)
		}
		rto = want
	}
	s.fc.Advance(10 * time.Millisecond)
	s.ack(seq+1, 0)
	if st := s.c.Stats(); st.SRTT != 0 || st.RTO != 2*time.Second {
		t.Fatalf("the ACK of a retransmitted packet: SRTT %v RTO %v; want no sample and the backoff kept", st.SRTT, st.RTO)
	}
	seq = s.write("y")
	s.fc.Advance(100 * time.Millisecond)
	s.ack(seq+1, 0)
	if st := s.c.Stats(); st.SRTT != 100*time.Millisecond || st.RTTVar != 50*time.Millisecond || st.RTO != 300*time.Millisecond {
		t.Fatalf("first clean sample: SRTT %v RTTVAR %v RTO %v; want 100ms 50ms 300ms", st.SRTT, st.RTTVar, st.RTO)
	}
}

// TestFastRetransmitOnDuplicateACKs: the third duplicate ACK resends the
// hole at once (no timer), once: a fourth does not resend it again.
func TestFastRetransmitOnDuplicateACKs(t *testing.T) {
	s := newScripted(t, Config{NoDelay: true}) // each Write its own packet, as scripted
	for i := range 5 {
		if seq := s.write(string(rune('a' + i))); seq != uint32(i) {
			t.Fatalf("message %d went as seq %d", i, seq)
		}
	}
	s.fc.Advance(10 * time.Millisecond)
	s.ack(1, 0) // 0 arrived, 1 lost
	for dup := 1; dup <= 2; dup++ {
		s.ack(1, 0)
		if st := s.c.Stats(); st.FastRetransmits != 0 {
			t.Fatalf("fast retransmit after %d duplicate ACKs", dup)
		}
	}
	s.none("two duplicate ACKs")
	s.ack(1, 0)
	if p := s.next(); p.h.Flags&FlagData == 0 || p.h.Seq != 1 || p.payload != "b" {
		t.Fatalf("third duplicate ACK: the Conn sent %v seq %d %q, want seq 1 again", p.h.Flags, p.h.Seq, p.payload)
	}
	s.ack(1, 0)
	s.none("a fourth duplicate ACK")
	if st := s.c.Stats(); st.FastRetransmits != 1 || st.Retransmitted != 1 || st.Timeouts != 0 {
		t.Fatalf("fast %d retransmitted %d timeouts %d; want 1 1 0", st.FastRetransmits, st.Retransmitted, st.Timeouts)
	}
}

// TestSACKSender: two packets SACKed above a hole are not evidence of
// loss; a third is, and the holes are resent once (more SACKs in the
// same epoch do not resend them again). After a timeout, once the resent
// oldest packet is acknowledged, the rest of the window goes again but
// the SACKed packets never do. Every ACK here opens the window by one,
// so none counts as a duplicate ACK: SACK alone drives this.
func TestSACKSender(t *testing.T) {
	s := newScripted(t, Config{NoDelay: true}) // each Write its own packet, as scripted
	for i := range 6 {
		s.write(string(rune('a' + i)))
	}
	s.fc.Advance(10 * time.Millisecond)
	win := uint16(peerWindow)
	sack := func(a, bm uint32) {
		win++
		s.send(Header{Flags: FlagAck | FlagSACK, Ack: a, Window: win, SACK: bm}, "")
	}
	drain := func() map[uint32]int { // what the Conn resends now
		got := map[uint32]int{}
		for {
			select {
			case p := <-s.in:
				if p.h.Flags&FlagData != 0 {
					got[p.h.Seq]++
				}
				continue
			case <-time.After(50 * time.Millisecond):
			}
			return got
		}
	}
	sack(0, 0b0110) // 2 and 3 arrived (bit i: 0+1+i); 0 and 1 are holes
	if got := drain(); len(got) != 0 {
		t.Fatalf("two SACKed above the holes: resent %v", got)
	}
	sack(0, 0b1110) // and 4
	if got := drain(); len(got) != 2 || got[0] != 1 || got[1] != 1 {
		t.Fatalf("three SACKed above the holes: resent %v, want 0 and 1 once", got)
	}
	sack(0, 0b11110) // and 5: the holes were resent in this epoch already
	if got := drain(); len(got) != 0 {
		t.Fatalf("more SACKs in the same epoch: resent %v", got)
	}
	if st := s.c.Stats(); st.FastRetransmits != 2 || st.Retransmitted != 2 || st.Timeouts != 0 {
		t.Fatalf("fast %d retransmitted %d timeouts %d; want 2 2 0", st.FastRetransmits, st.Retransmitted, st.Timeouts)
	}
	s.fc.Advance(s.c.Stats().RTO)
	if got := drain(); len(got) != 1 || got[0] != 1 {
		t.Fatalf("timeout: resent %v, want the oldest, 0", got)
	}
	sack(1, 0b1111) // 0 arrived; 2-5 are still held (bit i: 1+1+i)
	// 1 goes again (twice as of this writing: once as the rest of the
	// window after the timeout, once as a hole with SACKs above it in the
	// new epoch; wasteful, not wrong), the SACKed packets never.
	if got := drain(); len(got) != 1 || got[1] == 0 {
		t.Fatalf("after the timeout: resent %v, want 1 and none of the SACKed 2-5", got)
	} else if got[1] > 1 {
		t.Logf("after the timeout, 1 was resent %d times", got[1])
	}
}

// TestSACKReceiver: out-of-order packets are acknowledged at once with
// a bitmap of what is held above the hole.
func TestSACKReceiver(t *testing.T) {
	s := newScripted(t, Config{})
	const data = FlagData | FlagFirst | FlagLast | FlagAck
	s.send(Header{Flags: data, Seq: 1, Window: peerWindow}, "b")
	p := s.next()
	if p.h.Ack != 0 || p.h.Flags&FlagSACK == 0 || p.h.SACK != 0b1 {
		t.Fatalf("after seq 1: ack %d flags %v SACK %b; want ack 0 with SACK 1", p.h.Ack, p.h.Flags, p.h.SACK)
	}
	s.send(Header{Flags: data, Seq: 3, Window: peerWindow}, "d")
	if p = s.next(); p.h.Ack != 0 || p.h.SACK != 0b101 {
		t.Fatalf("after seq 3: ack %d SACK %b; want ack 0 with SACK 101", p.h.Ack, p.h.SACK)
	}
	s.send(Header{Flags: data, Seq: 0, Window: peerWindow}, "a") // fills the first hole
	if p = s.next(); p.h.Ack != 2 || p.h.SACK != 0b1 {
		t.Fatalf("after seq 0: ack %d SACK %b; want ack 2 with SACK 1 (seq 3)", p.h.Ack, p.h.SACK)
	}
}

// TestDelayedACKBound: a lone in-order packet is acknowledged no later
// than DelayedACK after it arrived (and not before, when nothing else
// calls for an ACK); every second packet, an out-of-order packet and a
// packet filling a hole are acknowledged at once.
func TestDelayedACKBound(t *testing.T) {
	s := newScripted(t, Config{DelayedACK: 5 * time.Millisecond})
	const data = FlagData | FlagFirst | FlagLast | FlagAck
	s.send(Header{Flags: data, Seq: 0, Window: peerWindow}, "a")
	s.none("a lone packet")
	s.fc.Advance(5*time.Millisecond - time.Nanosecond)
	s.none("before the delayed-ACK bound")
	s.fc.Advance(time.Nanosecond)
	if p := s.next(); p.h.Flags&FlagAck == 0 || p.h.Ack != 1 || p.h.Flags&FlagData != 0 {
		t.Fatalf("at the bound: %v ack %d, want a pure ACK of 1", p.h.Flags, p.h.Ack)
	}
	s.send(Header{Flags: data, Seq: 1, Window: peerWindow}, "b")
	s.none("one packet pending")
	s.send(Header{Flags: data, Seq: 2, Window: peerWindow}, "c")
	if p := s.next(); p.h.Ack != 3 {
		t.Fatalf("second packet: ack %d, want 3 at once", p.h.Ack)
	}
	s.send(Header{Flags: data, Seq: 4, Window: peerWindow}, "e")
	if p := s.next(); p.h.Ack != 3 || p.h.SACK != 0b1 {
		t.Fatalf("out of order: ack %d SACK %b, want 3 and 1 at once", p.h.Ack, p.h.SACK)
	}
	s.send(Header{Flags: data, Seq: 3, Window: peerWindow}, "d")
	if p := s.next(); p.h.Ack != 5 {
		t.Fatalf("hole filled: ack %d, want 5 at once", p.h.Ack)
	}
	s.none("everything acknowledged")
}
