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
		c.ackNewLocked(now, a)
	case a == c.sndUna && c.sndNxt != c.sndUna && c.cfg.Reliable && !grew &&
		h.Flags&(FlagData|FlagFIN|FlagKeepAlive) == 0:
		// A pure ACK that neither acknowledges nor opens the window
		// (window updates are not duplicates, RFC 5681).
		c.dupAcks++
		if c.dupAcks == dupThresh {
			c.markLostLocked(a)
		}
	}
	if h.Flags&FlagSACK != 0 && c.cfg.Reliable {
		c.onSACKLocked(a, h.SACK)
	}
}

// ackNewLocked releases everything before a. The RTT sample is the
// newest newly acknowledged packet that was neither SACKed before (its
// ACK waited for a hole) nor, with any other packet acknowledged here,
// ever retransmitted (Karn's rule: the ACK may be for the copy).
func (c *Conn) ackNewLocked(now time.Time, a uint32) {
	var sample time.Duration
	haveSample, karn, fresh := false, false, false
	if c.finSent && !seqLT(c.finSeq, c.sndUna) && seqLT(c.finSeq, a) {
		c.finAcked = true
		if c.finRtx == 0 {
			sample, haveSample = now.Sub(c.finSentAt), true
		} else {
			karn = true
		}
	}
	if c.cfg.Reliable {
		w := uint32(len(c.ring))
		for s := c.sndUna; s != a; s++ {
			if c.finSent && s == c.finSeq {
				continue
			}
			sp := &c.ring[s%w]
			if !sp.used {
				continue
			}
			switch {
			case sp.rtx > 0:
				karn = true
			case !sp.sacked:
				sample, haveSample = now.Sub(sp.sentAt), true
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

// onSACKLocked marks SACKed packets and declares lost every hole with
// at least dupThresh SACKed packets above it.
func (c *Conn) onSACKLocked(a, bm uint32) {
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
		if i >= 0 && bm&(1<<uint(i)) != 0 {
			sp.sacked = true
		}
		if sp.sacked {
			above++
		} else if above >= dupThresh {
			c.markLostLocked(s)
		}
	}
}

// markLostLocked queues seq for fast retransmission, once per timeout
// epoch.
func (c *Conn) markLostLocked(seq uint32) {
	if !seqLT(seq, c.sndNxt) || seqLT(seq, c.sndUna) {
		return
	}
	if !(c.finSent && seq == c.finSeq) {
		sp := &c.ring[seq%uint32(len(c.ring))]
		if !sp.used || sp.sacked || sp.lost {
			return
		}
		sp.lost = true
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
