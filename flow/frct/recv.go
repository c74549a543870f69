package frct

import "time"

// handlePacketLocked processes one packet read from the lower into buf.
// It reports whether buf is now owned by the receive buffers.
func (c *Conn) handlePacketLocked(buf *[]byte, n int, out *outbox) (kept bool) {
	return c.handlePacketCELocked(buf, n, false, out)
}

// handlePacketCELocked is handlePacketLocked for a packet that arrived
// marked congestion experienced when ce is set.
func (c *Conn) handlePacketCELocked(buf *[]byte, n int, ce bool, out *outbox) (kept bool) {
	before := c.stats.PacketsReceived
	kept = c.handleOneLocked(buf, n, ce, out)
	if c.err == nil && c.stats.PacketsReceived != before {
		c.finishInputLocked(c.lastRecv, out)
	}
	return kept
}

// handleOneLocked is handlePacketCELocked without finishInputLocked:
// what the packet calls for is left pending, for the caller to send
// once for a batch of packets.
func (c *Conn) handleOneLocked(buf *[]byte, n int, ce bool, out *outbox) (kept bool) {
	h, payload, err := ParseHeader((*buf)[:n])
	if err != nil {
		c.stats.MalformedDropped++
		return false
	}
	if h.Flags&FlagAck != 0 && seqLT(c.sndNxt, h.Ack) {
		c.stats.ForgedAcksDropped++
		return false
	}
	c.stats.PacketsReceived++
	now := c.clk.Now()
	c.lastRecv = now
	if h.Flags&FlagAck != 0 {
		c.onAckLocked(now, h)
	}
	switch {
	case h.Flags&(FlagData|FlagFIN) != 0:
		if ce {
			c.stats.CEReceived++
		}
		if ce != c.ceState {
			// DCTCP's receiver: the packets acknowledged so far carry the
			// old state, so their pending ACK goes out before it changes.
			if c.ackPending > 0 {
				out.add(c.buildLocked(now, 0, c.sndNxt, nil))
			}
			c.ceState = ce
		}
		kept = c.onDataLocked(h, frag{buf: buf, data: payload})
		if h.Packed {
			c.stats.PackedReceived++
		}
	case h.Flags&FlagKeepAlive != 0:
		c.ackNow = true
	}
	return kept
}

// finishInputLocked sends what processing a packet called for:
// retransmissions (which carry the ACK) and a pure ACK if one is still
// due, or arms the delayed-ACK timer.
func (c *Conn) finishInputLocked(now time.Time, out *outbox) {
	for _, s := range c.rtxPending {
		c.retransmitLocked(now, s, out)
	}
	c.rtxPending = c.rtxPending[:0]
	if c.sqMsgs > 0 && !c.writerWaiting {
		// The ACKs may have opened the window: buffered messages go
		// now, carrying the ACK. A writer waiting for room sends them
		// itself (the ACK woke it), so that the reader does not block
		// in a write to the lower.
		c.sendBufferedLocked(now, out)
	}
	switch {
	case c.ackNow || c.ackPending >= 2 || c.ackPending > 0 && c.cfg.DelayedACK < 0:
		out.add(c.buildLocked(now, 0, c.sndNxt, nil))
	case c.ackPending > 0 && !c.tDelAck.armed():
		c.tDelAck.arm(now, c.cfg.DelayedACK)
	}
}

// onDataLocked places a DATA or FIN packet; it reports whether f.buf is
// now owned by the receive buffers.
func (c *Conn) onDataLocked(h Header, f frag) bool {
	w := int32(len(c.ooo))
	d := seqDiff(h.Seq, c.rcvNxt)
	switch {
	case d < 0 && -d <= c.dupSpan:
		c.stats.DupDropped++
		c.ackPending++ // the peer may have missed our ACK
		return false
	case d < 0 || c.finRcvd:
		c.stats.OutOfWindowDropped++
		return false
	case d >= w && !c.cfg.Reliable:
		// Sequenced, unreliable: slide the window, giving up on the gap.
		c.skipToLocked(h.Seq - uint32(w) + 1)
		d = w - 1
	case d >= w || h.Flags&FlagFIN == 0 && !seqLT(h.Seq, c.recvEdgeLocked()):
		c.stats.OutOfWindowDropped++
		return false
	}
	kept := c.compact(&f)
	if d == 0 {
		c.consumeLocked(h.Flags, h.Packed, f)
		if c.drainLocked() {
			c.ackNow = true // a hole was filled: tell the sender at once
		} else {
			// Counted in segments, as TCP counts bytes: a large
			// (packed) packet is acknowledged at once, not after the
			// delayed-ACK timer, which would halve a sender whose
			// window holds one such packet.
			c.ackPending += int(segments(HeaderLen + len(f.data)))
		}
		return kept
	}
	slot := &c.ooo[h.Seq%uint32(w)]
	if slot.state != slotEmpty {
		c.stats.DupDropped++
		c.ackNow = true
		return false
	}
	if c.oooCount >= c.cfg.ReorderBuffer {
		c.stats.ReorderDropped++
		return false
	}
	*slot = rslot{state: slotHeld, flags: h.Flags, packed: h.Packed, frag: f}
	c.oooCount++
	c.ackNow = true // out of order: SACK at once so the sender can repair
	if !c.cfg.Reliable || !c.cfg.InOrder {
		c.deliverCompleteLocked(h.Seq)
	}
	return kept
}

// compact copies a small payload out of its pooled buffer so that many
// small messages do not pin a whole MTU each; it reports whether f still
// holds the buffer.
func (c *Conn) compact(f *frag) bool {
	if f.buf != nil && len(f.data) < c.mtu/4 {
		f.data = append([]byte(nil), f.data...)
		f.buf = nil // the caller recycles it
		return false
	}
	return f.buf != nil
}

// recvEdgeLocked is the first sequence number beyond what this end has
// allowed the peer to send.
func (c *Conn) recvEdgeLocked() uint32 {
	edge := c.rcvNxt + uint32(c.recvWindowLocked())
	if seqLT(edge, c.advEdge) {
		return c.advEdge
	}
	return edge
}

// consumeLocked takes the packet at rcvNxt.
func (c *Conn) consumeLocked(flags Flags, packed bool, f frag) {
	c.rcvNxt++
	if flags&FlagFIN != 0 {
		c.finRcvd = true
		c.ackNow = true
		c.finishMessageLocked()
		c.clearOOOLocked()
		wakeLocked(&c.rwake)
		return
	}
	if packed {
		c.finishMessageLocked() // its FIRST ends an unfinished message
		c.pushPackedLocked(f)
		return
	}
	c.appendFragLocked(flags, f)
}

// pushPackedLocked delivers each record of a packed packet (validated
// by ParseHeader) as a message of its own. The records stay in the
// packet's buffer, which the last of them owns and which counts once
// in the window: messages are read in order, so it is recycled when
// the last is read. An unreliable connection may drop a message when
// its reader lags, so there each record is copied out instead.
func (c *Conn) pushPackedLocked(f frag) {
	own := c.cfg.Reliable || f.buf == nil
	p := f.data
	for len(p) > 0 {
		var rec []byte
		rec, p = nextRecord(p)
		m := &message{}
		m.frags = m.one[:]
		if own {
			m.frags[0].data = rec
		} else {
			m.frags[0].data = append([]byte(nil), rec...)
		}
		if len(p) == 0 {
			m.pkts = 1
			if own {
				m.frags[0].buf = f.buf
			}
		}
		c.pushMessageLocked(m)
	}
	if !own {
		c.putBuf(f.buf)
	}
}

// drainLocked consumes the packets that became in order; it reports
// whether there were any.
func (c *Conn) drainLocked() bool {
	w := uint32(len(c.ooo))
	any := false
	for !c.finRcvd {
		slot := &c.ooo[c.rcvNxt%w]
		switch slot.state {
		case slotEmpty:
			return any
		case slotDelivered:
			*slot = rslot{}
			c.rcvNxt++
		case slotHeld:
			s := *slot
			*slot = rslot{}
			c.oooCount--
			c.consumeLocked(s.flags, s.packed, s.frag)
		}
		any = true
	}
	return any
}

// appendFragLocked adds an in-order fragment to the message being
// reassembled. A FIRST fragment ends an unfinished message (its writer
// gave up part way): the bytes written are delivered, as a stream would.
func (c *Conn) appendFragLocked(flags Flags, f frag) {
	if flags&FlagFirst != 0 && c.asm != nil {
		c.finishMessageLocked()
	}
	if c.asm == nil {
		c.asm = &message{}
	}
	c.asm.frags = append(c.asm.frags, f)
	c.asm.pkts++
	c.asmBytes += len(f.data)
	if flags&FlagLast != 0 || c.asmBytes >= c.cfg.MaxMessage || c.asm.pkts >= c.maxMsgPkts {
		c.finishMessageLocked()
	}
}

// finishMessageLocked moves the reassembled message to the read queue.
func (c *Conn) finishMessageLocked() {
	m := c.asm
	c.asm, c.asmBytes = nil, 0
	if m != nil {
		c.pushMessageLocked(m)
	}
}

func (c *Conn) pushMessageLocked(m *message) {
	empty := true
	for _, f := range m.frags {
		if len(f.data) > 0 {
			empty = false
			break
		}
	}
	if empty || !c.cfg.Reliable && c.unread >= c.cfg.Window {
		if !empty {
			c.stats.OverflowDropped++
		}
		c.recycleLocked(m)
		return
	}
	c.ready = append(c.ready, m)
	c.unread += m.pkts
	wakeLocked(&c.rwake)
}

func (c *Conn) recycleLocked(m *message) {
	for i := range m.frags {
		c.putBuf(m.frags[i].buf)
		m.frags[i] = frag{}
	}
}

// deliverCompleteLocked looks for a complete message around seq in the
// reorder buffer. Reliable and unordered: deliver it now and leave
// markers. Unreliable: give up on everything before it.
func (c *Conn) deliverCompleteLocked(seq uint32) {
	w := uint32(len(c.ooo))
	at := func(s uint32) *rslot {
		if d := seqDiff(s, c.rcvNxt); d <= 0 || d >= int32(w) {
			return nil
		}
		if sl := &c.ooo[s%w]; sl.state == slotHeld {
			return sl
		}
		return nil
	}
	first := seq
	for {
		sl := at(first)
		if sl == nil || sl.flags&FlagFIN != 0 && first != seq {
			return
		}
		if sl.flags&(FlagFirst|FlagFIN) != 0 {
			break
		}
		first--
	}
	last := seq
	for {
		sl := at(last)
		if sl == nil || sl.flags&FlagFIN != 0 && last != first {
			return
		}
		if sl.flags&(FlagLast|FlagFIN) != 0 {
			break
		}
		last++
	}
	if !c.cfg.Reliable {
		c.skipToLocked(first)
		c.drainLocked()
		return
	}
	if at(first).flags&FlagFIN != 0 {
		return // the FIN is only taken in order
	}
	if sl := at(first); sl.packed {
		f := sl.frag
		*sl = rslot{state: slotDelivered}
		c.oooCount--
		c.pushPackedLocked(f)
		return
	}
	m := &message{}
	for s := first; ; s++ {
		sl := at(s)
		m.frags = append(m.frags, sl.frag)
		m.pkts++
		*sl = rslot{state: slotDelivered}
		c.oooCount--
		if s == last {
			break
		}
	}
	c.pushMessageLocked(m)
}

// skipToLocked (unreliable only) gives up on every packet before s.
func (c *Conn) skipToLocked(s uint32) {
	w := uint32(len(c.ooo))
	if d := seqDiff(s, c.rcvNxt); d >= int32(w) {
		c.clearOOOLocked()
	} else {
		for q := c.rcvNxt; q != s; q++ {
			c.clearSlotLocked(&c.ooo[q%w])
		}
	}
	if c.asm != nil {
		c.recycleLocked(c.asm)
		c.asm, c.asmBytes = nil, 0
	}
	c.rcvNxt = s
}

func (c *Conn) clearOOOLocked() {
	for i := range c.ooo {
		c.clearSlotLocked(&c.ooo[i])
	}
}

func (c *Conn) clearSlotLocked(sl *rslot) {
	if sl.state == slotHeld {
		c.putBuf(sl.frag.buf)
		c.oooCount--
	}
	*sl = rslot{}
}
