package frct

import "time"

// Stats is a snapshot of a connection's counters and gauges.
type Stats struct {
	PacketsSent        uint64 // packets handed to the lower flow
	PacketsReceived    uint64 // packets that passed header and ACK checks
	DataSent           uint64 // first transmissions of DATA packets
	Retransmitted      uint64 // retransmissions of DATA and FIN, any trigger
	FastRetransmits    uint64 // retransmissions on 3 duplicate ACKs or SACK evidence
	Timeouts           uint64 // retransmission timer expiries
	KeepAlivesSent     uint64 // keepalives and zero-window probes sent
	DupDropped         uint64 // duplicate DATA or FIN dropped
	OutOfWindowDropped uint64 // sequence number outside the receive window
	ForgedAcksDropped  uint64 // packets acknowledging data never sent
	MalformedDropped   uint64 // packets whose header did not decode
	ReorderDropped     uint64 // out-of-order packets dropped, reorder buffer full
	OverflowDropped    uint64 // unreliable: messages dropped, reader too slow
	WriteErrors        uint64 // lower WritePacket errors (left to recovery)

	PackedSent     uint64 // packed DATA packets sent (first transmissions)
	PackedMessages uint64 // messages sent inside them
	PackedReceived uint64 // packed DATA packets received and accepted
	SendBuffered   int    // messages waiting in the send buffer
	SendBufBytes   int    // bytes they take, record headers included

	CEReceived uint64 // DATA packets that arrived marked congestion experienced
	ECNEchoed  uint64 // sent packets the peer acknowledged with ECN echo
	LossCuts   uint64 // congestion window decreases on loss
	ECNCuts    uint64 // congestion window decreases on ECN echo
	DelayCuts  uint64 // congestion window decreases on queueing delay
	RTOCuts    uint64 // congestion window decreases on timeout
	Probes     uint64 // drains to remeasure the base RTT
	RTOUndone  uint64 // timeouts found spurious, their decrease undone
	Bends      uint64 // path label changes (path bending)
	BendsHeld  uint64 // bends asked for but held back by the rate limit
	BendErrors uint64 // bends the lower flow refused
	Label      uint8  // current path label

	Cwnd       int           // congestion window in segments of 1500 bytes (0: no congestion control)
	CwndBytes  int           // the same in bytes
	PacingRate float64       // segments per second the pacer allows (0: not paced)
	MTU        int           // the lower flow's MTU
	BaseRTT    time.Duration // smallest recent round-trip time
	SlowStart  bool          // the controller is in slow start

	RTO    time.Duration // current retransmission timeout, backoff included
	SRTT   time.Duration // smoothed round-trip time (0 before a sample)
	RTTVar time.Duration // round-trip time variation

	Unacked  int // sent packets kept for retransmission
	Buffered int // received packets held: out of order, in reassembly, unread
}

// Stats returns a snapshot of the counters.
func (c *Conn) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.WriteErrors = c.writeErrs.Load()
	s.RTO, s.SRTT, s.RTTVar = c.rto, c.srtt, c.rttvar
	s.Unacked = c.unackedLocked()
	s.MTU = c.mtu
	s.SendBuffered, s.SendBufBytes = c.sqMsgs, len(c.sq)-c.sqHead
	if cc := c.cc; cc != nil {
		s.ECNEchoed = cc.stats.marked
		s.LossCuts, s.ECNCuts, s.DelayCuts, s.RTOCuts = cc.stats.lossCuts, cc.stats.ecnCuts, cc.stats.delayCuts, cc.stats.rtoCuts
		s.Probes, s.RTOUndone = cc.stats.probes, cc.stats.rtoUndone
		s.Cwnd, s.PacingRate, s.BaseRTT, s.SlowStart = cc.window(), cc.rate, cc.base(), cc.slowStart
		s.CwndBytes = int(cc.cwnd * ccSegment)
		if b := cc.bend; b != nil {
			s.Bends, s.BendsHeld, s.BendErrors, s.Label = b.bends, b.held, b.failed, b.label
		}
	}
	s.Buffered = c.oooCount + c.unread
	if c.asm != nil {
		s.Buffered += c.asm.pkts
	}
	return s
}
