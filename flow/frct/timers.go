package frct

import (
	"fmt"
	"time"
)

// onRTO retransmits the oldest unacknowledged packet and backs off
// (RFC 6298, section 5).
func (c *Conn) onRTO(now time.Time, out *outbox) {
	if c.sndUna == c.sndNxt {
		return
	}
	first := c.sndUna
	if !c.cfg.Reliable {
		if c.cc != nil && c.forgetFlightLocked(now) {
			return
		}
		if !c.finSent || c.finAcked {
			return
		}
		first = c.finSeq
	}
	c.stats.Timeouts++
	if c.rto < c.cfg.RTOMax {
		c.backoff++
		c.setRTOLocked()
	}
	if c.cc != nil {
		c.cc.onRTO(now, c.sndNxt)
		c.bendOnTimeoutLocked(now)
		c.rtoAt, c.rtoRecover, c.rtoRecovering = now, c.sndNxt, true
		c.rtoCheck, c.rtoSeq = true, first
	}
	if c.cfg.Reliable {
		// Start a new epoch: every hole may be repaired once more on
		// SACK or duplicate-ACK evidence.
		for i := range c.ring {
			c.ring[i].lost = false
		}
		c.dupAcks = 0
	}
	c.retransmitLocked(now, first, out)
	c.tRTO.arm(now, c.rto)
}

// forgetFlightLocked is the timeout of an unreliable connection with
// congestion control: the data in flight got no ACK for an RTO, so it
// is taken as lost (nothing is resent) and leaves the window, which is
// cut. It reports whether there was such data.
func (c *Conn) forgetFlightLocked(now time.Time) bool {
	end := c.sndNxt
	if c.finSent && !c.finAcked {
		end = c.finSeq
	}
	if c.sndUna == end {
		return false
	}
	c.stats.Timeouts++
	c.cc.onRTO(now, c.sndNxt)
	c.bendOnTimeoutLocked(now)
	w := uint32(len(c.ring))
	for s := c.sndUna; s != end; s++ {
		if sp := &c.ring[s%w]; sp.used && !sp.sacked {
			c.overBytes -= sp.over
		}
		c.ring[s%w] = spkt{}
	}
	c.sndUna = end
	if c.rto < c.cfg.RTOMax {
		c.backoff++
		c.setRTOLocked()
	}
	if c.sndUna != c.sndNxt {
		c.tRTO.arm(now, c.rto)
	}
	wakeLocked(&c.wwake)
	return true
}

// onDelayedAck sends an ACK that waited for a packet to ride on.
func (c *Conn) onDelayedAck(now time.Time, out *outbox) {
	if c.ackPending > 0 || c.ackNow {
		out.add(c.buildLocked(now, 0, c.sndNxt, nil))
	}
}

// onKeepAlive sends a keepalive when nothing was sent for KeepAlive.
func (c *Conn) onKeepAlive(now time.Time, out *outbox) {
	if now.Sub(c.lastSend) >= c.cfg.KeepAlive {
		c.sendProbeLocked(now, out)
	}
	c.tKeepAlive.armAt(now, c.lastSend.Add(c.cfg.KeepAlive))
}

// onPersist probes a zero window so that a lost window update cannot
// stall a blocked writer forever.
func (c *Conn) onPersist(now time.Time, out *outbox) {
	if !c.writerBlocked && c.sqMsgs == 0 || c.sndUna != c.sndNxt || seqLT(c.sndNxt, c.peerEdge) {
		return
	}
	c.sendProbeLocked(now, out)
	c.persistIvl = min(2*c.persistIvl, c.cfg.RTOMax)
	c.tPersist.arm(now, c.persistIvl)
}

func (c *Conn) sendProbeLocked(now time.Time, out *outbox) {
	c.stats.KeepAlivesSent++
	out.add(c.buildLocked(now, FlagKeepAlive, c.sndNxt, nil))
}

// onPeerTimer fails the connection when the peer has been silent for
// PeerTimeout.
func (c *Conn) onPeerTimer(now time.Time, out *outbox) {
	if silent := now.Sub(c.lastRecv); silent >= c.cfg.PeerTimeout {
		c.failLocked(fmt.Errorf("frct: nothing heard from the peer for %v: %w", silent, ErrPeerGone), out)
		return
	}
	c.tPeer.armAt(now, c.lastRecv.Add(c.cfg.PeerTimeout))
}
