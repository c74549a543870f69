package dt

import (
	"fmt"
	"sync/atomic"
)

// DropReason says why a packet was dropped.
type DropReason uint8

// Drop reasons counted by Counters.
const (
	DropNoRoute    DropReason = iota // no route, or no next hop left
	DropTTL                          // TTL expired
	DropMalformed                    // header could not be decoded
	DropQueueFull                    // outgoing queue full
	numDropReasons                   // number of reasons; keep last
)

// String returns the reason's name as shown in counters output.
func (r DropReason) String() string {
	switch r {
	case DropNoRoute:
		return "no-route"
	case DropTTL:
		return "ttl-expired"
	case DropMalformed:
		return "malformed"
	case DropQueueFull:
		return "queue-full"
	}
	return fmt.Sprintf("drop-reason(%d)", uint8(r))
}

// Counters are the traffic counters of one adjacency or one flow. The
// zero value is ready; all methods are safe for concurrent use and do
// not allocate. A Counters must not be copied after first use.
type Counters struct {
	packetsIn, bytesIn   atomic.Uint64
	packetsOut, bytesOut atomic.Uint64
	drops                [numDropReasons]atomic.Uint64
	marked               atomic.Uint64
}

// CounterSnapshot is a point-in-time copy of Counters. Each field is
// read atomically, the set as a whole is not.
type CounterSnapshot struct {
	PacketsIn, BytesIn   uint64
	PacketsOut, BytesOut uint64
	DropNoRoute          uint64
	DropTTL              uint64
	DropMalformed        uint64
	DropQueueFull        uint64
	// ECNMarked counts the packets sent with their ECN field raised
	// because the egress was congested (not drops).
	ECNMarked uint64
}

// In counts one received packet of n bytes.
func (c *Counters) In(n int) {
	c.packetsIn.Add(1)
	c.bytesIn.Add(uint64(n))
}

// Out counts one sent packet of n bytes.
func (c *Counters) Out(n int) {
	c.packetsOut.Add(1)
	c.bytesOut.Add(uint64(n))
}

// Drop counts one dropped packet. Unknown reasons are ignored.
func (c *Counters) Drop(r DropReason) {
	if r < numDropReasons {
		c.drops[r].Add(1)
	}
}

// Mark counts one packet whose ECN field was raised on the way out.
func (c *Counters) Mark() { c.marked.Add(1) }

// Snapshot returns the current values.
func (c *Counters) Snapshot() CounterSnapshot {
	return CounterSnapshot{
		PacketsIn:     c.packetsIn.Load(),
		BytesIn:       c.bytesIn.Load(),
		PacketsOut:    c.packetsOut.Load(),
		BytesOut:      c.bytesOut.Load(),
		DropNoRoute:   c.drops[DropNoRoute].Load(),
		DropTTL:       c.drops[DropTTL].Load(),
		DropMalformed: c.drops[DropMalformed].Load(),
		DropQueueFull: c.drops[DropQueueFull].Load(),
		ECNMarked:     c.marked.Load(),
	}
}

// Drops returns the total number of dropped packets in s.
func (s CounterSnapshot) Drops() uint64 {
	return s.DropNoRoute + s.DropTTL + s.DropMalformed + s.DropQueueFull
}
