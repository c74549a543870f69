package frct

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ouro-net/ouro/lib/clock"
)

// Lower is the packet service FRCT runs over (a flow's raw channel;
// memlink.End in tests). It must be safe for concurrent use, must not
// retain the slice passed to WritePacket, and Close must unblock a
// pending ReadPacket. A ReadPacket error other than io.ErrShortBuffer
// (an oversized packet, dropped) ends the connection.
type Lower interface {
	// ReadPacket reads one packet; io.EOF when the lower flow is gone.
	ReadPacket(b []byte) (int, error)
	// WritePacket sends one packet.
	WritePacket(b []byte) error
	// MTU is the largest packet the lower flow carries.
	MTU() int
	// Close releases the lower flow.
	Close() error
}

// ECNLower is a Lower that also reports whether a packet arrived
// marked congestion experienced by the layer below; a Conn over it
// echoes the marks to the sender (see Congestion control).
type ECNLower interface {
	Lower
	// ReadPacketECN is ReadPacket that also reports the mark.
	ReadPacketECN(b []byte) (n int, ce bool, err error)
}

// BatchLower is a Lower that also moves several packets per call (a
// flow's channel: recvmmsg/sendmmsg). A Conn over it reads what has
// arrived in one call, handles it under one lock and acknowledges it
// with one ACK, and writes what it built in one call.
type BatchLower interface {
	Lower
	// ReadPackets reads up to len(bufs) packets, waiting only for the
	// first: packet i lands in bufs[i], its length in sizes[i] (-1
	// when it was longer than bufs[i]: truncated, to be dropped) and
	// whether it arrived marked congestion experienced in ce[i]. It
	// returns how many packets it read; errors are as for ReadPacket.
	ReadPackets(bufs [][]byte, sizes []int, ce []bool) (int, error)
	// WritePackets sends the packets in order and returns how many it
	// sent.
	WritePackets(bufs [][]byte) (int, error)
}

// readBatch is the most packets a Conn over a BatchLower reads at once.
const readBatch = 32

// ackEvery is the most in-order packets one ACK covers while a batch of
// packets is handled (a stretch ACK, as TCP's with GRO): a sender whose
// window is a few packets still gets an ACK before its window is used
// up; fewer ACKs cost less on a path whose cost is per packet.
const ackEvery = 8

// Conn is one end of an FRCT connection. It implements net.Conn; see
// the package documentation for its semantics.
type Conn struct {
	lower      Lower
	cfg        Config
	clk        clock.Clock
	mtu        int
	maxPayload int
	maxMsgPkts int
	dupSpan    int32
	pool       sync.Pool
	batch      BatchLower // the lower, when it moves batches; nil otherwise
	views      sync.Pool  // *[][]byte for WritePackets

	wsem, rsem chan struct{} // serialise Writes (messages never interleave) and Reads
	rdl, wdl   *deadline
	readerDone chan struct{}
	closeOnce  sync.Once
	closeErr   error
	lowerOnce  sync.Once
	lowerErr   error
	writeErrs  atomic.Uint64

	mu         sync.Mutex
	dead       chan struct{} // closed on failure or teardown
	deadClosed bool
	closing    bool  // Close was called
	closed     bool  // torn down: timers stopped, lower closed
	err        error // terminal failure
	rwake      chan struct{}
	wwake      chan struct{}
	lastSend   time.Time
	lastRecv   time.Time
	stats      Stats

	// sender
	sndUna, sndNxt uint32
	peerEdge       uint32 // first sequence number the peer has not allowed
	ring           []spkt // reliable: unacked DATA, indexed by seq % len
	writerBlocked  bool
	finSent        bool
	finAcked       bool
	finSeq         uint32
	finSentAt      time.Time
	finRtx         int
	dupAcks        int
	rtxPending     []uint32
	srtt, rttvar   time.Duration
	rto            time.Duration // rtoBase with backoff applied
	rtoBase        time.Duration
	backoff        int
	hasRTT         bool
	persistIvl     time.Duration
	cc             *controller // congestion control; nil when off
	sacked         int         // packets in flight the peer has SACKed
	overBytes      int         // bytes beyond one segment of the packets in flight not SACKed (see segments)
	maxRecord      int         // largest message the send buffer takes; 0: no send buffer
	sq             []byte      // send buffer: whole messages as packed records, from sqHead
	sqHead         int
	sqMsgs         int  // messages in the send buffer
	finWanted      bool // CloseWrite or Close: the FIN follows the send buffer
	// draining: an outbox holding packets from the send buffer is
	// being flushed. Only one at a time, so that the reader, the
	// pacer and the writer, which all send from the buffer, never put
	// its packets on the wire out of order.
	draining bool
	// writerWaiting: a Write waits for room in the send buffer (or
	// for it to empty). The writer then drains the buffer itself when
	// woken, so the reader never blocks in a write to the lower while
	// ACKs wait to be read, as a writer blocked on the window never
	// made it do before packing.
	writerWaiting bool
	// largeWaiting: a Write of a message too large for a record waits
	// for the send buffer to empty, so nothing in it is held back for
	// a fuller packet (holdLocked).
	largeWaiting  bool
	paceTimer     clock.Timer // wakes a writer held back by the pacer
	rtoAt         time.Time   // last retransmission timeout (with congestion control)
	rtoRecover    uint32      // sndNxt at that timeout
	rtoRecovering bool        // packets sent before rtoAt are still unacknowledged
	rtoCheck      bool        // the next new ACK tells whether the timeout was spurious
	rtoSeq        uint32      // the packet the timeout retransmitted

	// receiver
	rcvNxt     uint32
	advEdge    uint32  // largest right edge advertised
	ooo        []rslot // out-of-order packets, indexed by seq % len
	oooCount   int     // slots holding a packet (markers excluded)
	asm        *message
	asmBytes   int
	ready      []*message
	unread     int // packets of complete, not fully read messages
	finRcvd    bool
	ackPending int
	ackNow     bool
	lastAdvWnd int
	ceState    bool // the last DATA packet arrived marked congestion experienced

	tRTO, tDelAck, tKeepAlive, tPeer, tPersist ltimer
}

// spkt is a sent DATA packet kept for retransmission.
type spkt struct {
	used   bool
	sacked bool
	lost   bool // retransmitted on loss evidence since the last timeout
	packed bool // a packed packet: its payload is records
	flags  Flags
	over   int // wire bytes beyond one segment (see segments)
	rtx    int
	sentAt time.Time
	buf    *[]byte
	n      int
}

// rslot is a reorder-buffer slot.
type rslot struct {
	state  slotState
	packed bool
	flags  Flags
	frag   frag
}

type slotState uint8

const (
	slotEmpty     slotState = iota
	slotHeld                // holds a packet
	slotDelivered           // its message was delivered out of order
)

// frag is a received payload, possibly inside a pooled buffer.
type frag struct {
	buf  *[]byte // pooled buffer to recycle, or nil
	data []byte
}

// message is a (partly) reassembled message and its read position.
type message struct {
	frags []frag
	one   [1]frag // frags of a message from a packed packet: no second allocation
	pkts  int
	idx   int // next fragment to read
	off   int // offset in frags[idx]
}

// outbox collects packets built under c.mu, to be written after it is
// released so that a slow lower never stalls the connection.
type outbox struct {
	pkts       []*[]byte
	closeLower bool
	drained    bool // holds packets from the send buffer: its flush ends the drain (Conn.draining)
}

func (o *outbox) add(p *[]byte) { o.pkts = append(o.pkts, p) }

// New starts an FRCT connection over lower, which it owns from then on
// (Close closes it). On error lower is left untouched.
func New(lower Lower, cfg Config) (*Conn, error) {
	c, err := newConn(lower, cfg)
	if err != nil {
		return nil, err
	}
	c.start()
	return c, nil
}

// newConn builds a connection without starting its reader.
func newConn(lower Lower, cfg Config) (*Conn, error) {
	if lower == nil {
		return nil, errors.New("frct: nil lower flow")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	mtu := lower.MTU()
	if mtu <= HeaderLen {
		return nil, fmt.Errorf("frct: lower MTU %d leaves no room after the %d-byte header", mtu, HeaderLen)
	}
	c := &Conn{
		lower:      lower,
		cfg:        cfg,
		clk:        cfg.Clock,
		mtu:        mtu,
		maxPayload: mtu - HeaderLen,
		dupSpan:    int32(4 * cfg.Window),
		wsem:       make(chan struct{}, 1),
		rsem:       make(chan struct{}, 1),
		rdl:        newDeadline(cfg.Clock),
		wdl:        newDeadline(cfg.Clock),
		readerDone: make(chan struct{}),
		dead:       make(chan struct{}),
		ooo:        make([]rslot, cfg.Window),
		rto:        cfg.InitialRTO,
		rtoBase:    cfg.InitialRTO,
		lastAdvWnd: cfg.Window,
	}
	c.maxMsgPkts = (cfg.MaxMessage + c.maxPayload - 1) / c.maxPayload
	c.pool.New = func() any { b := make([]byte, mtu); return &b }
	if bl, ok := lower.(BatchLower); ok {
		c.batch = bl
		c.views.New = func() any { v := make([][]byte, 0, 64); return &v }
	}
	if cfg.Reliable || cfg.congestionOn() {
		c.ring = make([]spkt, cfg.Window)
	}
	if cfg.Reliable && cfg.SendBuffer > 0 {
		c.maxRecord = min(c.maxPayload-recordHeader, 1<<16-1)
	}
	if cfg.congestionOn() {
		// The window is in segments; it may grow to as many bytes as
		// Window packets of the lower's MTU hold.
		c.cc = newController(float64(cfg.Window)*max(1, float64(mtu)/ccSegment), cfg.CCQueue)
		if _, ok := lower.(Bender); ok && !cfg.NoBend {
			c.cc.bend = newBender(rand.Uint64())
		}
	}
	c.setISN(0)
	c.tRTO = ltimer{c: c, fire: c.onRTO}
	c.tDelAck = ltimer{c: c, fire: c.onDelayedAck}
	c.tKeepAlive = ltimer{c: c, fire: c.onKeepAlive}
	c.tPeer = ltimer{c: c, fire: c.onPeerTimer}
	c.tPersist = ltimer{c: c, fire: c.onPersist}
	return c, nil
}

// setISN sets the initial sequence number of both directions (tests use
// it to exercise wrap-around; both ends must agree).
func (c *Conn) setISN(isn uint32) {
	c.sndUna, c.sndNxt, c.rcvNxt = isn, isn, isn
	c.peerEdge = isn + uint32(c.cfg.Window)
	c.advEdge = c.peerEdge
	if c.cc != nil {
		c.cc.roundEnd = isn
	}
}

// start arms the liveness timers and starts the reader of the lower.
func (c *Conn) start() {
	c.mu.Lock()
	now := c.clk.Now()
	c.lastSend, c.lastRecv = now, now
	if c.cfg.KeepAlive > 0 {
		c.tKeepAlive.arm(now, c.cfg.KeepAlive)
	}
	if c.cfg.PeerTimeout > 0 {
		c.tPeer.arm(now, c.cfg.PeerTimeout)
	}
	c.mu.Unlock()
	go c.readLoop()
}

// readLoop is the one goroutine of a Conn: it reads the lower until the
// lower fails or is closed.
func (c *Conn) readLoop() {
	defer close(c.readerDone)
	if c.batch != nil {
		c.readLoopBatch()
		return
	}
	for {
		buf := c.getBuf()
		var (
			n   int
			ce  bool
			err error
		)
		if el, ok := c.lower.(ECNLower); ok {
			n, ce, err = el.ReadPacketECN(*buf)
		} else {
			n, err = c.lower.ReadPacket(*buf)
		}
		var out outbox
		if errors.Is(err, io.ErrShortBuffer) { // oversized packet, truncated
			c.putBuf(buf)
			c.mu.Lock()
			c.stats.MalformedDropped++
			c.mu.Unlock()
			continue
		}
		if err != nil {
			c.putBuf(buf)
			c.mu.Lock()
			c.failLocked(fmt.Errorf("frct: lower flow failed (%v): %w", err, ErrPeerGone), &out)
			c.mu.Unlock()
			c.flush(&out)
			return
		}
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
}

// readLoopBatch is readLoop over a BatchLower: every packet of a batch
// is handled under one lock, and what they call for (retransmissions,
// one ACK for up to ackEvery in-order packets) is built once and
// written in one call.
func (c *Conn) readLoopBatch() {
	var (
		bufs  [readBatch]*[]byte
		views [readBatch][]byte
		sizes [readBatch]int
		ce    [readBatch]bool
		out   outbox
	)
	for i := range bufs {
		bufs[i] = c.getBuf()
	}
	defer func() {
		for _, b := range bufs {
			c.putBuf(b)
		}
	}()
	for {
		for i, b := range bufs {
			views[i] = *b
		}
		n, err := c.batch.ReadPackets(views[:], sizes[:], ce[:])
		if err != nil {
			c.mu.Lock()
			c.failLocked(fmt.Errorf("frct: lower flow failed (%v): %w", err, ErrPeerGone), &out)
			c.mu.Unlock()
			c.flush(&out)
			return
		}
		c.mu.Lock()
		c.handleBatchLocked(bufs[:n], sizes[:n], ce[:n], &out)
		c.mu.Unlock()
		c.flush(&out)
	}
}

// handleBatchLocked handles the packets of one batch read: packet i is
// in bufs[i][:sizes[i]] (a negative size: oversized, dropped), marked
// when ce[i]; a buffer the receive buffers keep is replaced with a new
// one. One ACK goes out for every ackEvery in-order packets and one for
// the rest at the end, with whatever else the batch called for. c.mu
// is held.
func (c *Conn) handleBatchLocked(bufs []*[]byte, sizes []int, ce []bool, out *outbox) {
	before := c.stats.PacketsReceived
	for i := range bufs {
		if sizes[i] < 0 {
			c.stats.MalformedDropped++
			continue
		}
		if c.err != nil {
			return
		}
		if c.handleOneLocked(bufs[i], sizes[i], ce[i], out) {
			bufs[i] = c.getBuf()
		}
		if c.ackPending >= ackEvery && c.err == nil {
			c.finishInputLocked(c.lastRecv, out)
		}
	}
	if c.err == nil && c.stats.PacketsReceived != before {
		c.finishInputLocked(c.lastRecv, out)
	}
}

func (c *Conn) getBuf() *[]byte { return c.pool.Get().(*[]byte) }

func (c *Conn) putBuf(b *[]byte) {
	if b != nil {
		*b = (*b)[:cap(*b)]
		c.pool.Put(b)
	}
}

// flush writes the collected packets; c.mu is not held. When they
// came from the send buffer, the drain ends: what the buffer still
// holds and the windows allow goes next, from here.
func (c *Conn) flush(o *outbox) {
	for {
		c.write(o)
		if !o.drained {
			return
		}
		o.drained = false
		c.mu.Lock()
		c.draining = false
		wakeLocked(&c.wwake)
		if (c.sqMsgs > 0 || c.finWanted && !c.finSent) && !c.writerWaiting {
			// A waiting writer, just woken, sends the rest itself.
			c.sendBufferedLocked(c.clk.Now(), o)
		}
		c.mu.Unlock()
	}
}

// write hands the collected packets to the lower.
func (c *Conn) write(o *outbox) {
	if c.batch != nil && len(o.pkts) > 1 {
		c.flushBatch(o)
		return
	}
	for i, p := range o.pkts {
		if err := c.lower.WritePacket(*p); err != nil {
			c.writeErrs.Add(1)
		}
		c.putBuf(p)
		o.pkts[i] = nil
	}
	o.pkts = o.pkts[:0]
	if o.closeLower {
		o.closeLower = false
		c.closeLower()
	}
}

// flushBatch is flush over a BatchLower: one call for every packet.
func (c *Conn) flushBatch(o *outbox) {
	vp := c.views.Get().(*[][]byte)
	v := (*vp)[:0]
	for _, p := range o.pkts {
		v = append(v, *p)
	}
	n, err := c.batch.WritePackets(v)
	if err != nil {
		c.writeErrs.Add(uint64(len(v) - n))
	}
	clear(v)
	*vp = v[:0]
	c.views.Put(vp)
	for i, p := range o.pkts {
		c.putBuf(p)
		o.pkts[i] = nil
	}
	o.pkts = o.pkts[:0]
	if o.closeLower {
		o.closeLower = false
		c.closeLower()
	}
}

func (c *Conn) closeLower() {
	c.lowerOnce.Do(func() { c.lowerErr = c.lower.Close() })
}

// failLocked ends the connection with err: timers stop, waiters wake and
// the lower is closed once the outbox is flushed. c.mu is held.
func (c *Conn) failLocked(err error, out *outbox) {
	if c.err != nil {
		return
	}
	c.err = err
	c.stopTimersLocked()
	c.killLocked()
	out.closeLower = true
}

func (c *Conn) stopTimersLocked() {
	for _, t := range []*ltimer{&c.tRTO, &c.tDelAck, &c.tKeepAlive, &c.tPeer, &c.tPersist} {
		t.stop()
	}
	if c.paceTimer != nil {
		c.paceTimer.Stop()
	}
}

// killLocked wakes every waiter for good; c.mu is held.
func (c *Conn) killLocked() {
	if !c.deadClosed {
		c.deadClosed = true
		close(c.dead)
	}
	wakeLocked(&c.rwake)
	wakeLocked(&c.wwake)
}

func waitChLocked(p *chan struct{}) <-chan struct{} {
	if *p == nil {
		*p = make(chan struct{})
	}
	return *p
}

func wakeLocked(p *chan struct{}) {
	if *p != nil {
		close(*p)
		*p = nil
	}
}

// acquire takes a Read or Write slot, giving up at the deadline or when
// the connection dies.
func (c *Conn) acquire(op string, sem chan struct{}, dl *deadline) error {
	select {
	case sem <- struct{}{}:
		return nil
	default:
	}
	select {
	case sem <- struct{}{}:
		return nil
	case <-dl.done():
		return timeoutError(op)
	case <-c.dead:
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.closing {
			return opError(op, net.ErrClosed)
		}
		return opError(op, c.err)
	}
}

// Close sends a FIN after the data already written, waits up to
// Config.Linger for it all to be acknowledged, then closes the lower
// flow and stops every goroutine and timer. Blocked Reads and Writes
// return net.ErrClosed. Close is idempotent.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() { c.closeErr = c.doClose() })
	return c.closeErr
}

func (c *Conn) doClose() error {
	c.mu.Lock()
	c.closing = true
	wakeLocked(&c.rwake)
	wakeLocked(&c.wwake)
	c.mu.Unlock()

	// Wait for a Write in progress to notice (it returns at once), so
	// that the FIN follows its last fragment.
	select {
	case c.wsem <- struct{}{}:
		defer func() { <-c.wsem }()
	case <-c.dead:
	}
	var out outbox
	c.mu.Lock()
	if c.err == nil && !c.finWanted {
		c.finWanted = true
		c.sendBufferedLocked(c.clk.Now(), &out)
	}
	c.mu.Unlock()
	c.flush(&out)
	unacked := c.linger()
	c.teardown()
	if unacked != 0 {
		// Never a silent loss: the caller learns that the peer may not
		// have had everything.
		return fmt.Errorf("frct: close: %d data packets or buffered messages never acknowledged (linger %v): %w", unacked, c.cfg.Linger, ErrUnacked)
	}
	if c.lowerErr != nil {
		return fmt.Errorf("frct: closing lower flow: %w", c.lowerErr)
	}
	return nil
}

// linger waits until everything sent is acknowledged, the connection
// fails or Config.Linger passes. It returns how many data packets were
// still unacknowledged when it stopped (it gave up, or the connection
// failed), 0 when it did not wait (negative Linger). An unacknowledged
// FIN alone is no loss: the peer may have closed first and gone.
func (c *Conn) linger() uint32 {
	if c.cfg.Linger < 0 {
		return 0
	}
	t := c.clk.NewTimer(c.cfg.Linger)
	defer t.Stop()
	for {
		c.mu.Lock()
		if c.err != nil || c.sndUna == c.sndNxt && c.sqMsgs == 0 && (c.finSent || !c.finWanted) {
			n := c.unackedDataLocked()
			c.mu.Unlock()
			return n
		}
		ch := waitChLocked(&c.wwake)
		c.mu.Unlock()
		select {
		case <-ch:
		case <-t.C():
			c.mu.Lock()
			defer c.mu.Unlock()
			return c.unackedDataLocked()
		}
	}
}

// unackedDataLocked counts the data packets sent and not acknowledged
// (the FIN, last in sequence, is not data) and the messages still in
// the send buffer.
func (c *Conn) unackedDataLocked() uint32 {
	n := c.sndNxt - c.sndUna
	if n > 0 && c.finSent && !seqLT(c.finSeq, c.sndUna) {
		n--
	}
	return n + uint32(c.sqMsgs)
}

// teardown stops timers, closes the lower and waits for the reader.
func (c *Conn) teardown() {
	c.mu.Lock()
	c.closed = true
	if c.err == nil {
		c.err = net.ErrClosed
	}
	c.stopTimersLocked()
	c.killLocked()
	c.mu.Unlock()
	c.rdl.stop()
	c.wdl.stop()
	c.closeLower()
	<-c.readerDone
}

// CloseWrite sends a FIN after the data already written: the peer reads
// io.EOF once it has read everything, while this end can still read.
// Later Writes fail.
func (c *Conn) CloseWrite() error {
	if err := c.acquire("close", c.wsem, c.wdl); err != nil {
		return err
	}
	defer func() { <-c.wsem }()
	var out outbox
	c.mu.Lock()
	err := c.writeErrLocked()
	if err == nil {
		c.finWanted = true
		c.sendBufferedLocked(c.clk.Now(), &out)
	} else if errors.Is(err, errWriteShut) {
		err = nil
	}
	c.mu.Unlock()
	c.flush(&out)
	if err != nil {
		return opError("close", err)
	}
	return nil
}

// LocalAddr returns a placeholder Addr.
func (c *Conn) LocalAddr() net.Addr { return Addr{} }

// RemoteAddr returns a placeholder Addr.
func (c *Conn) RemoteAddr() net.Addr { return Addr{} }

// SetDeadline sets both the read and the write deadline, on the
// configured clock.
func (c *Conn) SetDeadline(t time.Time) error {
	c.rdl.set(t)
	c.wdl.set(t)
	return nil
}

// SetReadDeadline bounds pending and future Reads; zero means none.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.rdl.set(t)
	return nil
}

// SetNoDelay turns the hold of small messages behind two packets in
// flight off (true) or on (false), as TCP_NODELAY does for a TCP
// socket; Config.NoDelay is its initial value. Turning it off sends
// what the hold kept, as far as the windows allow.
func (c *Conn) SetNoDelay(on bool) {
	var out outbox
	c.mu.Lock()
	c.cfg.NoDelay = on
	if on && c.sqMsgs > 0 && !c.writerWaiting {
		c.sendBufferedLocked(c.clk.Now(), &out)
	}
	c.mu.Unlock()
	c.flush(&out)
}

// SetWriteDeadline bounds pending and future Writes; zero means none.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.wdl.set(t)
	return nil
}
