package frct

import (
	"io"
	"math"
	"testing"
	"time"

	"github.com/ouro-net/ouro/lib/bottleneck"
)

// The congestion tests run whole Conns in virtual time against a
// simulated bottleneck (lib/bottleneck): the Conns' readers are not
// started; the simulator hands each packet to the peer Conn on its own
// goroutine, and a bulk source fills the sender whenever the windows
// and the pacer allow, exactly as Write does. Everything is
// deterministic and takes no wall-clock time.

const (
	simMTU     = 1416 // 1400 bytes of payload
	simPayload = simMTU - HeaderLen
	mbit       = 1_000_000
)

// simNet is a bottleneck shared by flows: data crosses fwd, ACKs come
// back over rev (no rate, only delay).
type simNet struct {
	sim      *bottleneck.Sim
	fwd, rev *bottleneck.Link
	flows    []*simFlow
	buffered bool // flows added from now on write through the send buffer
}

func newSimNet(rate int64, rtt time.Duration, limit, markAbove int) *simNet {
	s := bottleneck.New(time.Unix(1000, 0))
	return &simNet{
		sim: s,
		fwd: &bottleneck.Link{Sim: s, Rate: rate, Limit: limit, MarkAbove: markAbove, Delay: rtt / 2},
		rev: &bottleneck.Link{Sim: s, Delay: rtt / 2},
	}
}

// simLower is one end's lower: what it writes crosses link to peer.
type simLower struct {
	n      *simNet
	link   *bottleneck.Link
	peer   func() *Conn
	after  func()                  // runs after each delivery (drain the reader, refill the writer)
	mangle func(b []byte) [][]byte // optional: rewrite or multiply packets on the way
	mtu    int                     // 0: simMTU
}

func (l *simLower) ReadPacket([]byte) (int, error) { return 0, io.EOF }
func (l *simLower) MTU() int {
	if l.mtu > 0 {
		return l.mtu
	}
	return simMTU
}
func (l *simLower) Close() error { return nil }

func (l *simLower) WritePacket(b []byte) error {
	pkts := [][]byte{append([]byte(nil), b...)}
	if l.mangle != nil {
		pkts = l.mangle(pkts[0])
	}
	for _, p := range pkts {
		l.link.Send(len(p), func(ce bool) {
			inject(l.peer(), p, ce)
			if l.after != nil {
				l.after()
			}
		})
	}
	return nil
}

// inject does for one packet what the reader goroutine does.
func inject(c *Conn, pkt []byte, ce bool) {
	buf := c.getBuf()
	n := copy(*buf, pkt)
	var out outbox
	kept := false
	c.mu.Lock()
	if c.err == nil {
		kept = c.handlePacketCELocked(buf, n, ce, &out)
	}
	c.mu.Unlock()
	if !kept {
		c.putBuf(buf)
	}
	c.flush(&out)
}

// simFlow is one bulk transfer: a sender that always has data, a
// receiver that reads everything at once.
type simFlow struct {
	n        *simNet
	snd, rcv *Conn
	got      int64 // payload bytes read by the receiver
	wake     time.Time
	stopped  bool
	buf      []byte
	payload  int  // bytes per packet (0: simPayload)
	buffered bool // write as Write does through the send buffer, which the ACKs and the pacer drain
}

func simCfg(sim *bottleneck.Sim) Config {
	return Config{Clock: sim.Clock(), Reliable: true, InOrder: true, PeerTimeout: -1, KeepAlive: -1, Linger: -1}
}

// addFlow starts a bulk flow over n.
func (n *simNet) addFlow(t *testing.T, cfg Config, mangleAcks func([]byte) [][]byte) *simFlow {
	t.Helper()
	return n.addFlowMTU(t, cfg, mangleAcks, simMTU)
}

// addFlowMTU is addFlow over lowers of the given MTU, the sender
// filling every packet.
func (n *simNet) addFlowMTU(t *testing.T, cfg Config, mangleAcks func([]byte) [][]byte, mtu int) *simFlow {
	t.Helper()
	f := &simFlow{n: n, buf: make([]byte, 1<<16), payload: mtu - HeaderLen, buffered: n.buffered}
	ls := &simLower{n: n, link: n.fwd, peer: func() *Conn { return f.rcv }, mtu: mtu}
	lr := &simLower{n: n, link: n.rev, peer: func() *Conn { return f.snd }, mangle: mangleAcks, mtu: mtu}
	var err error
	if f.snd, err = newConn(ls, cfg); err != nil {
		t.Fatal(err)
	}
	if f.rcv, err = newConn(lr, cfg); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*Conn{f.snd, f.rcv} {
		close(c.readerDone) // no reader: the simulator delivers
		t.Cleanup(func() { c.Close() })
	}
	// Refill the sender on every ACK, as a writer woken by it would;
	// run drains the receiver and wakes the sender every millisecond
	// (after timeouts, as Write's wake-ups do).
	lr.after = f.pump
	n.flows = append(n.flows, f)
	f.pump()
	return f
}

// drain reads whatever the receiver has complete.
func (f *simFlow) drain() {
	c := f.rcv
	for {
		c.mu.Lock()
		ready := len(c.ready) > 0
		c.mu.Unlock()
		if !ready {
			return
		}
		k, _ := c.Read(f.buf)
		f.got += int64(k)
	}
}

// pump sends new data while the windows and the pacer allow and
// schedules itself for when the pacer next lets a packet go.
func (f *simFlow) pump() {
	if f.stopped {
		return
	}
	c := f.snd
	var out outbox
	c.mu.Lock()
	if f.buffered {
		// Write as Write does while the buffer has room (a message
		// as large as a record may be: enqueue, then send what the
		// gates allow); with 64 messages buffered the writer waits,
		// and only the ACKs and the pacer's timer send more.
		for c.err == nil && c.sqMsgs < 64 {
			c.enqueueLocked(f.buf[:c.maxRecord])
			c.sendBufferedLocked(c.clk.Now(), &out)
		}
		c.mu.Unlock()
		c.flush(&out)
		return
	}
	payload := f.buf[:simPayload]
	if f.payload > 0 {
		payload = f.buf[:f.payload]
	}
	for i := 0; c.err == nil && i < 1000; i++ { // bounded: a sender with no window at all would never stop
		now := c.clk.Now()
		open, pace := c.sendGateLocked(now)
		if pace > 0 {
			at := now.Add(pace)
			if f.wake.IsZero() || at.Before(f.wake) || !f.wake.After(now) {
				f.wake = at
				f.n.sim.At(at, f.pump)
			}
			break
		}
		if !open {
			break
		}
		c.sendDataLocked(now, FlagData|FlagFirst|FlagLast, false, payload, &out)
	}
	c.mu.Unlock()
	c.flush(&out)
}

// run advances the simulation by d. ACKs and the pacer refill the
// senders as they come; every millisecond the receivers are drained and
// the senders refilled (a timeout frees the window without an ACK).
func (n *simNet) run(d time.Duration) {
	end := n.sim.Now().Add(d)
	for n.sim.Now().Before(end) {
		n.sim.RunFor(min(time.Millisecond, end.Sub(n.sim.Now())))
		for _, f := range n.flows {
			f.drain()
			f.pump()
		}
	}
}

// rates runs for d and returns each flow's goodput in bits per second.
func (n *simNet) rates(d time.Duration) []float64 {
	before := make([]int64, len(n.flows))
	for i, f := range n.flows {
		before[i] = f.got
	}
	n.run(d)
	r := make([]float64, len(n.flows))
	for i, f := range n.flows {
		r[i] = float64(f.got-before[i]) * 8 / d.Seconds()
	}
	return r
}

func jain(x []float64) float64 {
	var s, s2 float64
	for _, v := range x {
		s += v
		s2 += v * v
	}
	if s2 == 0 {
		return 0
	}
	return s * s / (float64(len(x)) * s2)
}

func sum(x []float64) float64 {
	var s float64
	for _, v := range x {
		s += v
	}
	return s
}

// wire is the link's payload goodput ceiling: the share of each packet
// that is payload.
const wire = float64(simPayload) / simMTU

func mbps(x float64) float64 { return math.Round(x/1e4) / 100 }
