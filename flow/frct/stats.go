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
	s.Buffered = c.oooCount + c.unread
	if c.asm != nil {
		s.Buffered += c.asm.pkts
	}
	return s
}
