package frct

import (
	"encoding/binary"
	"net"
	"time"
)

// Write sends b as one message (messages longer than Config.MaxMessage
// are split into several). On a reliable connection it blocks while the
// peer's window is full, until the write deadline; it returns once every
// fragment has been handed to the lower flow, not once acknowledged. On
// error, n counts the bytes whose fragments were sent, and the peer
// receives exactly those bytes (the cut message ends early).
//
// A message that fits in one packet with room for a record header, on
// a reliable connection with a send buffer (Config.SendBuffer), goes
// out at once when nothing is queued and the windows and the pacer let
// it; otherwise Write copies it into the send buffer and returns, and
// the buffered messages leave packed, several to a packet, as the
// windows open (see Packing in the package documentation). Write
// blocks, until the write deadline, only while the buffer is full.
func (c *Conn) Write(b []byte) (int, error) {
	if err := c.acquire("write", c.wsem, c.wdl); err != nil {
		return 0, err
	}
	defer func() { <-c.wsem }()
	if len(b) == 0 {
		c.mu.Lock()
		err := c.writeErrLocked()
		c.mu.Unlock()
		if err != nil {
			return 0, opError("write", err)
		}
		return 0, nil
	}
	n := 0
	for len(b) > 0 {
		m := b[:min(len(b), c.cfg.MaxMessage)]
		k, err := c.writeMessage(m)
		n += k
		if err != nil {
			return n, err
		}
		b = b[len(m):]
	}
	return n, nil
}

// writeErrLocked tells why nothing more can be written; c.mu is held.
func (c *Conn) writeErrLocked() error {
	switch {
	case c.closing:
		return net.ErrClosed
	case c.err != nil:
		return c.err
	case c.finSent || c.finWanted:
		return errWriteShut
	}
	return nil
}

// writeMessage fragments one message into the window.
func (c *Conn) writeMessage(m []byte) (int, error) {
	if len(m) <= c.maxRecord {
		return c.writeSmall(m)
	}
	var out outbox
	defer c.flush(&out)
	off := 0
	c.mu.Lock()
	defer func() {
		c.writerBlocked, c.writerWaiting = false, false
		c.mu.Unlock()
	}()
	c.largeWaiting = true
	defer func() { c.largeWaiting = false }()
	for off < len(m) {
		now := c.clk.Now()
		if c.sqMsgs > 0 {
			// Buffered messages go first: wait until they are sent
			// (and send them even when about to fail, see writeSmall).
			c.sendBufferedLocked(now, &out)
		}
		if err := c.writeErrLocked(); err != nil {
			return off, opError("write", err)
		}
		if c.wdl.expired() {
			return off, timeoutError("write")
		}
		queued := c.sqMsgs > 0 || c.draining
		open, pace := c.sendGateLocked(now)
		if pace > 0 && !queued {
			c.paceLocked(pace, &out)
			continue
		}
		if !open || queued {
			c.writerBlocked = true
			c.writerWaiting = queued
			if c.sndUna == c.sndNxt && !c.tPersist.armed() {
				c.persistIvl = c.rto
				c.tPersist.arm(now, c.persistIvl)
			}
			c.waitWriterLocked(&out)
			c.writerBlocked, c.writerWaiting = false, false
			continue
		}
		n := min(c.maxPayload, len(m)-off)
		flags := FlagData
		if off == 0 {
			flags |= FlagFirst
		}
		if off+n == len(m) {
			flags |= FlagLast
		}
		c.sendDataLocked(now, flags, false, m[off:off+n], &out)
		off += n
		if len(out.pkts) >= 32 {
			c.mu.Unlock()
			c.flush(&out)
			c.mu.Lock()
		}
	}
	return off, nil
}

// writeSmall sends a message that fits in a record of a packed packet:
// at once when nothing is buffered and the gates are open, else through
// the send buffer. It blocks only while the buffer is full.
func (c *Conn) writeSmall(m []byte) (int, error) {
	var out outbox
	defer c.flush(&out)
	c.mu.Lock()
	defer c.mu.Unlock()
	defer func() { c.writerWaiting = false }()
	room := func() bool { return c.sqMsgs == 0 || len(c.sq)-c.sqHead+recordHeader+len(m) <= c.cfg.SendBuffer }
	for {
		now := c.clk.Now()
		err := c.writeErrLocked()
		if err == nil && !c.wdl.expired() {
			if c.sqMsgs == 0 && !c.draining && (!c.holdLocked() || c.fullLocked(recordHeader+len(m), recordHeader+len(m))) {
				if open, pace := c.sendGateLocked(now); open && pace == 0 {
					c.sendDataLocked(now, FlagData|FlagFirst|FlagLast, false, m, &out)
					return len(m), nil
				}
			}
			if room() {
				// Behind the others, and sent with them.
				c.enqueueLocked(m)
				c.sendBufferedLocked(now, &out)
				return len(m), nil
			}
		}
		// No room, or about to fail. The writer waits for room from
		// here on (writerWaiting), so nothing is held back for a fuller
		// packet (holdLocked); and, even when about to fail, it is the
		// one to send what the ACK that woke it allowed.
		c.writerWaiting = true
		if c.sqMsgs > 0 {
			c.sendBufferedLocked(now, &out)
		}
		switch {
		case err != nil:
			return 0, opError("write", err)
		case c.wdl.expired():
			return 0, timeoutError("write")
		case room():
			c.writerWaiting = false
			continue
		}
		c.waitWriterLocked(&out)
		c.writerWaiting = false
	}
}

// waitWriterLocked sends what out holds and waits, without c.mu, until
// the writer is woken (wwake), its deadline passes or the connection
// dies; c.mu is held again on return.
func (c *Conn) waitWriterLocked(out *outbox) {
	ch := waitChLocked(&c.wwake)
	c.mu.Unlock()
	c.flush(out)
	select {
	case <-ch:
	case <-c.wdl.done():
	case <-c.dead:
	}
	c.mu.Lock()
}

// enqueueLocked appends m to the send buffer as a record. The buffer is
// compacted when its free head is at least as large as what it holds
// (each byte moves at most once per pass), else it grows; it holds at
// most Config.SendBuffer bytes (one message more when empty).
func (c *Conn) enqueueLocked(m []byte) {
	if c.sqHead > 0 && len(c.sq)+recordHeader+len(m) > cap(c.sq) && c.sqHead >= len(c.sq)-c.sqHead {
		n := copy(c.sq, c.sq[c.sqHead:])
		c.sq, c.sqHead = c.sq[:n], 0
	}
	c.sq = appendRecord(c.sq, m)
	c.sqMsgs++
}

// sendBufferedLocked sends what the send buffer holds while the gates are
// open: as many whole messages as fit in one packet (at most MaxPacked)
// go as one packed packet, a lone one as a plain packet. A closed pacer
// arms its timer, which drains again; a zero window with nothing in
// flight arms the persist timer; an ACK that opens the window drains
// (finishInputLocked). The FIN follows the last buffered message.
func (c *Conn) sendBufferedLocked(now time.Time, out *outbox) {
	if c.err != nil || c.draining {
		return // another flush of buffered packets is on: it sends the rest
	}
	took := false
	limit := c.packLimitLocked()
	for c.sqMsgs > 0 {
		open, pace := c.sendGateLocked(now)
		if pace > 0 {
			c.armPaceLocked(pace)
			break
		}
		if !open {
			if c.sndUna == c.sndNxt && !c.tPersist.armed() {
				c.persistIvl = c.rto
				c.tPersist.arm(now, c.persistIvl)
			}
			break
		}
		p := c.sq[c.sqHead:]
		size, k, last := 0, 0, 0
		for k < c.sqMsgs && k < MaxPacked {
			l := recordHeader + int(binary.BigEndian.Uint16(p[size:]))
			if size+l > limit && k > 0 {
				break
			}
			size += l
			k++
			last = l
		}
		if k == c.sqMsgs && k < MaxPacked && !c.fullLocked(size, last) && c.holdLocked() {
			break // the next ACK sends it, fuller
		}
		if k == 1 {
			rec, _ := nextRecord(p)
			c.sendDataLocked(now, FlagData|FlagFirst|FlagLast, false, rec, out)
		} else {
			c.sendDataLocked(now, FlagData|FlagFirst|FlagLast, true, p[:size], out)
			c.stats.PackedSent++
			c.stats.PackedMessages += uint64(k)
		}
		c.sqHead += size
		c.sqMsgs -= k
		took = true
		c.draining, out.drained = true, true
	}
	if c.sqMsgs == 0 {
		c.sq, c.sqHead = c.sq[:0], 0
		if c.finWanted && !c.finSent {
			c.sendFINLocked(now, out)
		}
	}
	if took {
		wakeLocked(&c.wwake) // room in the buffer, or a large message may go
	}
}

// packLimitLocked is the largest packet the send buffer is drained
// into: the lower's MTU, and at most half the congestion window, so a
// window holds at least two packets as TCP sizes its TSO packets (one
// packet per window would leave the path idle while its ACK returns).
func (c *Conn) packLimitLocked() int {
	limit := c.maxPayload
	if c.cc != nil {
		limit = min(limit, max(recordHeader+1, int(c.cc.cwnd*ccSegment/2)))
	}
	return limit
}

// fullLocked tells whether a packet of size bytes (records) is full:
// one more record as long as its last one, last bytes with its header,
// would not fit.
func (c *Conn) fullLocked(size, last int) bool {
	return size+last > c.packLimitLocked()
}

// holdLocked tells whether a packet that is not full should wait in the
// send buffer for the next ACK instead of leaving now, as Nagle's rule
// has TCP do: while two or more packets are in flight an ACK is due
// soon (the receiver acknowledges every second segment at once), and
// what the writer adds meanwhile leaves with it. Without this a writer
// slower than the path sends every message alone whenever the window
// has room, and each packet costs every process on the path a wake-up.
// Config.NoDelay (or SetNoDelay) turns it off; nothing is held while
// the FIN, a large message or a writer waiting for room is behind the
// buffer.
func (c *Conn) holdLocked() bool {
	return !c.cfg.NoDelay && c.cfg.Reliable && c.cfg.SendBuffer > 0 &&
		!c.finWanted && !c.writerWaiting && !c.largeWaiting &&
		int(c.sndNxt-c.sndUna)-c.sacked >= 2
}

// inflightLocked is what the congestion window is counted against: the
// packets in flight less those SACKed, in segments.
func (c *Conn) inflightLocked() float64 {
	return float64(int(c.sndNxt-c.sndUna)-c.sacked) + float64(c.overBytes)/ccSegment
}

// canSendLocked reports whether the windows allow a new DATA packet:
// the ring, the peer's receive window and the congestion window, which
// counts the segments in flight less those the peer has SACKed.
func (c *Conn) canSendLocked() bool {
	flight := c.sndNxt - c.sndUna
	if c.cc != nil && c.inflightLocked() >= float64(c.cc.window()) {
		return false
	}
	if !c.cfg.Reliable { // never held back by the peer's window
		return flight < uint32(len(c.ring))
	}
	return flight < uint32(len(c.ring)) && seqLT(c.sndNxt, c.peerEdge)
}

// sendGateLocked tells whether a new DATA packet may go now: open is
// false while a window is full; pace, when positive, is how long the
// pacer holds it back. Unreliable connections without congestion
// control are never held.
func (c *Conn) sendGateLocked(now time.Time) (open bool, pace time.Duration) {
	if !c.cfg.Reliable && c.cc == nil {
		return true, 0
	}
	if !c.canSendLocked() {
		return false, 0
	}
	if c.cc != nil {
		return true, c.cc.paceWait(now)
	}
	return true, 0
}

// paceLocked waits, with c.mu released, until the pacer lets the next
// packet go, the connection dies, the write deadline passes or the
// writer is woken; it flushes what was built first. c.mu is held.
func (c *Conn) paceLocked(d time.Duration, out *outbox) {
	c.armPaceLocked(d) // its wake needs c.mu, which the wait below releases
	c.waitWriterLocked(out)
}

// armPaceLocked sets the pacer's timer to fire in d.
func (c *Conn) armPaceLocked(d time.Duration) {
	if c.paceTimer == nil {
		c.paceTimer = c.clk.AfterFunc(d, c.paceWake)
	} else {
		c.paceTimer.Reset(d)
	}
}

// paceWake wakes a writer waiting for the pacer and sends what the send
// buffer holds.
func (c *Conn) paceWake() {
	var out outbox
	c.mu.Lock()
	wakeLocked(&c.wwake)
	if c.sqMsgs > 0 && !c.closed && !c.writerWaiting {
		c.sendBufferedLocked(c.clk.Now(), &out)
	}
	c.mu.Unlock()
	c.flush(&out)
}

// sendDataLocked sends a new DATA packet (packed: its payload is
// records) and, when reliable, keeps it for retransmission.
func (c *Conn) sendDataLocked(now time.Time, flags Flags, packed bool, payload []byte, out *outbox) {
	seq := c.sndNxt
	c.sndNxt++
	if c.ring != nil {
		wire := HeaderLen + len(payload)
		sp := spkt{used: true, flags: flags, packed: packed, sentAt: now, over: max(0, wire-ccSegment)}
		if c.cfg.Reliable {
			sp.buf = c.getBuf()
			sp.n = copy(*sp.buf, payload)
		}
		c.ring[seq%uint32(len(c.ring))] = sp
		c.overBytes += sp.over
		if !c.tRTO.armed() {
			c.tRTO.arm(now, c.rto)
		}
		if c.cc != nil {
			c.cc.onSendUnits(now, segments(wire), c.inflightLocked() >= float64(c.cc.window()))
		}
	}
	c.stats.DataSent++
	out.add(c.buildPackedLocked(now, flags, packed, seq, payload))
}

// sendFINLocked sends the FIN, which takes the next sequence number and
// is retransmitted until acknowledged.
func (c *Conn) sendFINLocked(now time.Time, out *outbox) {
	c.finSent = true
	c.finSeq = c.sndNxt
	c.sndNxt++
	c.finSentAt = now
	if !c.tRTO.armed() {
		c.tRTO.arm(now, c.rto)
	}
	out.add(c.buildLocked(now, FlagFIN, c.finSeq, nil))
}

// retransmitLocked resends the DATA or FIN packet seq if it is still
// unacknowledged; it reports whether it did.
func (c *Conn) retransmitLocked(now time.Time, seq uint32, out *outbox) bool {
	if !seqLT(seq, c.sndNxt) || seqLT(seq, c.sndUna) {
		return false
	}
	if c.finSent && seq == c.finSeq {
		c.finRtx++
		c.finSentAt = now
		c.stats.Retransmitted++
		out.add(c.buildLocked(now, FlagFIN, seq, nil))
		return true
	}
	if !c.cfg.Reliable {
		return false
	}
	sp := &c.ring[seq%uint32(len(c.ring))]
	if !sp.used || sp.sacked {
		return false
	}
	sp.rtx++
	sp.sentAt = now
	c.stats.Retransmitted++
	out.add(c.buildPackedLocked(now, sp.flags, sp.packed, seq, (*sp.buf)[:sp.n]))
	return true
}

// unackedLocked counts the packets kept for retransmission.
func (c *Conn) unackedLocked() int {
	if c.cfg.Reliable {
		return int(c.sndNxt - c.sndUna) // every DATA and the FIN are kept
	}
	if c.finSent && !c.finAcked {
		return 1
	}
	return 0
}

// recvWindowLocked is the number of packets this end can still buffer.
func (c *Conn) recvWindowLocked() int {
	return max(0, c.cfg.Window-c.unread)
}

// buildLocked encodes a packet with the current ACK state piggy-backed;
// every packet sent carries it, so building one satisfies any pending
// ACK.
func (c *Conn) buildLocked(now time.Time, flags Flags, seq uint32, payload []byte) *[]byte {
	return c.buildPackedLocked(now, flags, false, seq, payload)
}

// buildPackedLocked is buildLocked for a packet that may be packed.
func (c *Conn) buildPackedLocked(now time.Time, flags Flags, packed bool, seq uint32, payload []byte) *[]byte {
	wnd := c.recvWindowLocked()
	h := Header{Flags: flags | FlagAck, Window: uint16(wnd), Seq: seq, Ack: c.rcvNxt, Packed: packed}
	if c.ceState {
		h.Flags |= FlagECE
	}
	if c.oooCount > 0 || c.cfg.Reliable && !c.cfg.InOrder {
		if bm := c.sackBitmapLocked(); bm != 0 {
			h.SACK = bm
			h.Flags |= FlagSACK
		}
	}
	if edge := c.rcvNxt + uint32(wnd); seqLT(c.advEdge, edge) {
		c.advEdge = edge
	}
	c.lastAdvWnd = wnd
	c.ackPending = 0
	c.ackNow = false
	c.lastSend = now
	c.stats.PacketsSent++
	b := c.getBuf()
	*b = append(h.Append((*b)[:0]), payload...)
	return b
}

// sackBitmapLocked reports which of the 32 packets after rcvNxt+0 are
// already here.
func (c *Conn) sackBitmapLocked() uint32 {
	var bm uint32
	w := uint32(len(c.ooo))
	for i := uint32(0); i < 32 && i+1 < w; i++ {
		if c.ooo[(c.rcvNxt+1+i)%w].state != slotEmpty {
			bm |= 1 << i
		}
	}
	return bm
}
