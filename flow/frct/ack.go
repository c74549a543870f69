package frct

import "time"

// dupThresh is the number of duplicate ACKs, or of packets SACKed above
// a hole, that marks the hole lost (RFC 5681, RFC 6675).
const dupThresh = 3

// onAckLocked processes the ACK part of a packet whose Ack is known not
// to exceed sndNxt.
func (c *Conn) onAckLocked(now time.Time, h Header) {
	a := h.Ack
	grew := false
	if edge := a + uint32(h.Window); seqLT(c.peerEdge, edge) {
		c.peerEdge = edge
		grew = true
		wakeLocked(&c.wwake)
	}
	switch {
	case seqLT(c.sndUna, a):
		c.ackNewLocked(now, a, h.Flags&FlagECE != 0)
	case a == c.sndUna && c.sndNxt != c.sndUna && c.cfg.Reliable && !grew &&
		h.Flags&(FlagData|FlagFIN|FlagKeepAlive) == 0:
		// A pure ACK that neither acknowledges nor opens the window
		// (window updates are not duplicates, RFC 5681).
		c.dupAcks++
		if c.dupAcks == dupThresh {
			c.markLostLocked(now, a)
		}
	}
	if h.Flags&FlagSACK != 0 && c.cfg.Reliable {
		c.onSACKLocked(now, a, h.SACK)
	}
}

// ackNewLocked releases everything before a. The RTT sample is the
// newest newly acknowledged packet that was neither SACKed before (its
// ACK waited for a hole) nor, with any other packet acknowledged here,
// ever retransmitted (Karn's rule: the ACK may be for the copy).
func (c *Conn) ackNewLocked(now time.Time, a uint32, ece bool) {
	var sample time.Duration
	var sampleSent time.Time
	haveSample, karn, fresh := false, false, false
	acked, units := 0, 0.0
	if c.finSent && !seqLT(c.finSeq, c.sndUna) && seqLT(c.finSeq, a) {
		c.finAcked = true
		if c.finRtx == 0 {
			sample, sampleSent, haveSample = now.Sub(c.finSentAt), c.finSentAt, true
		} else {
			karn = true
		}
	}
	spurious := false
	if c.rtoCheck && c.cc != nil && c.cfg.Reliable {
		// The first new ACK after a timeout: if it also acknowledges
		// the packet after the one retransmitted, sent once and never
		// SACKed, that packet arrived from its first transmission, and
		// so, in all likelihood, did the one the timeout resent: the
		// ACKs were late, nothing was lost (the idea of F-RTO, RFC 5682).
		c.rtoCheck = false
		if next := c.rtoSeq + 1; seqLT(next, a) && !(c.finSent && next == c.finSeq) {
			sp := &c.ring[next%uint32(len(c.ring))]
			spurious = sp.used && sp.rtx == 0 && !sp.sacked
		}
	}
	if c.ring != nil {
		w := uint32(len(c.ring))
		for s := c.sndUna; s != a; s++ {
			if c.finSent && s == c.finSeq {
				continue
			}
			sp := &c.ring[s%w]
			if !sp.used {
				continue
			}
			acked++
			units += segments(ccSegment + sp.over)
			if sp.sacked {
				c.sacked--
			} else {
				c.overBytes -= sp.over
			}
			switch {
			case sp.rtx > 0:
				karn = true
			case !sp.sacked:
				sample, sampleSent, haveSample = now.Sub(sp.sentAt), sp.sentAt, true
				fresh = true
			default:
				fresh = true
			}
			c.putBuf(sp.buf)
			*sp = spkt{}
		}
	}
	c.sndUna = a
	c.dupAcks = 0
	if haveSample && !karn {
		c.updateRTTLocked(sample)
		if c.cc != nil {
			c.cc.onSample(now, sampleSent, sample)
		}
	}
	if c.cc != nil {
		if spurious {
			c.cc.undoRTO()
			c.rtoRecovering = false
		}
		c.cc.onAck(now, acked, units, ece, c.sndUna, c.sndNxt, c.srtt)
		c.bendLocked()
		c.afterTimeoutLocked()
	}
	if fresh && c.backoff > 0 {
		// Data sent once got through: the path works, so drop the
		// backoff even without a sample. With a hole early in most
		// windows Karn's rule leaves few samples, and a backoff kept
		// until the next one would stall recovery for seconds.
		c.backoff = 0
		c.setRTOLocked()
	}
	if c.sndUna == c.sndNxt {
		c.tRTO.disarm()
	} else {
		c.tRTO.arm(now, c.rto)
	}
	wakeLocked(&c.wwake)
}

// afterTimeoutLocked repairs the rest of a window lost to an outage
// once the retransmission after the timeout is acknowledged (NewReno's
// partial ACK, RFC 6582): with the congestion window limiting new data
// there are no SACKs above the holes to trigger fast retransmission, and
// one timeout per hole, backed off, would take seconds. It queues up to
// a congestion window of the packets sent before the timeout.
func (c *Conn) afterTimeoutLocked() {
	if !c.rtoRecovering || !c.cfg.Reliable {
		return
	}
	if !seqLT(c.sndUna, c.rtoRecover) {
		c.rtoRecovering = false
		return
	}
	w := uint32(len(c.ring))
	budget := float64(c.cc.window()) // segments
	for s := c.sndUna; budget > 0 && seqLT(s, c.rtoRecover) && seqLT(s, c.sndNxt); s++ {
		if c.finSent && s == c.finSeq {
			continue
		}
		sp := &c.ring[s%w]
		if !sp.used || sp.sacked || sp.sentAt.After(c.rtoAt) {
			continue
		}
		sp.sentAt = c.rtoAt.Add(1) // queued once
		c.rtxPending = append(c.rtxPending, s)
		budget -= segments(ccSegment + sp.over)
	}
}

// onSACKLocked marks SACKed packets and declares lost every hole with
// at least dupThresh SACKed packets above it.
func (c *Conn) onSACKLocked(now time.Time, a, bm uint32) {
	w := uint32(len(c.ring))
	above := 0
	for i := 31; i >= -1; i-- {
		s := a + 1 + uint32(i)
		if seqLT(s, c.sndUna) || !seqLT(s, c.sndNxt) || c.finSent && s == c.finSeq {
			continue
		}
		sp := &c.ring[s%w]
		if !sp.used {
			continue
		}
		// No RTT sample here: with a bitmap of 32, a newly reported bit
		// may be a packet that arrived long ago beyond the bitmap's reach.
		if i >= 0 && bm&(1<<uint(i)) != 0 && !sp.sacked {
			sp.sacked = true
			c.sacked++
			c.overBytes -= sp.over
			wakeLocked(&c.wwake) // the packet left the pipe
		}
		if sp.sacked {
			above++
		} else if above >= dupThresh {
			c.markLostLocked(now, s)
		}
	}
}

// markLostLocked queues seq for fast retransmission, once per timeout
// epoch.
func (c *Conn) markLostLocked(now time.Time, seq uint32) {
	if !seqLT(seq, c.sndNxt) || seqLT(seq, c.sndUna) {
		return
	}
	if !(c.finSent && seq == c.finSeq) {
		sp := &c.ring[seq%uint32(len(c.ring))]
		if !sp.used || sp.sacked || sp.lost {
			return
		}
		sp.lost = true
		if c.cc != nil {
			c.cc.onLoss(now, seq, c.sndNxt)
		}
	}
	c.stats.FastRetransmits++
	c.rtxPending = append(c.rtxPending, seq)
}

// updateRTTLocked folds a round-trip sample into SRTT and RTTVAR and
// recomputes the RTO (RFC 6298, section 2).
func (c *Conn) updateRTTLocked(r time.Duration) {
	if r < 0 {
		r = 0
	}
	if !c.hasRTT {
		c.srtt, c.rttvar, c.hasRTT = r, r/2, true
	} else {
		diff := c.srtt - r
		if diff < 0 {
			diff = -diff
		}
		c.rttvar = (3*c.rttvar + diff) / 4
		c.srtt = (7*c.srtt + r) / 8
	}
	c.rtoBase = min(max(c.srtt+max(time.Microsecond, 4*c.rttvar), c.cfg.RTOMin), c.cfg.RTOMax)
	c.backoff = 0
	c.setRTOLocked()
}

// setRTOLocked applies the exponential backoff to the base RTO.
func (c *Conn) setRTOLocked() {
	c.rto = c.rtoBase
	for i := 0; i < c.backoff && c.rto < c.cfg.RTOMax; i++ {
		c.rto *= 2
	}
	c.rto = min(c.rto, c.cfg.RTOMax)
}
