// Package dt is the data-transfer machinery of a unicast layer: the
// packet header (PCI) codec with in-place helpers for the forwarding
// path, the forwarding table (FIB) with next-hop sets and per-flow
// resilient hashing, and per-adjacency and per-flow counters.
//
// # Wire format
//
// Every data packet starts with a fixed header in network byte order.
// There is no source address. With a [Layout] of A address bytes and E
// endpoint-id bytes the header is A+4+E bytes long:
//
//	offset   size  field
//	0        A     destination address (1..8 bytes, default 4)
//	A        1     QoS cube
//	A+1      1     TTL
//	A+2      1     ECN (congestion level; 0 means none)
//	A+3      1     path label (0..MaxLabel)
//	A+4      E     endpoint id (1..8 bytes, default 8)
//
// The payload follows directly. Both sizes are fixed per layer (set at
// bootstrap, learnt at enrollment), so the header carries no version or
// length fields: the layer's protocol version (enroll.Version, checked
// at enrollment and on every adjacency hello) covers it. Version 2
// added the path label; a version-1 member is refused at enrollment.
//
// Decoding never panics. On the data path (Decode and the in-place
// helpers) a short packet yields the sentinel [ErrShortPacket] and an
// expired TTL yields [ErrTTLExpired], so hostile input costs no
// allocation; errors that only a programming mistake can cause (an
// invalid layout, an out-of-range value on encode) are wrapped with
// context.
//
// # Forwarding
//
// A [FIB] maps a destination address to an [Entry]: a set of primary
// next hops (all equal-cost next hops from SPF) and a set of loop-free
// alternates used only when no primary is left. A next hop is an opaque
// id naming one lower flow; two parallel links to one neighbour are two
// next hops.
//
// A flow is pinned to one next hop, never spread per packet: the key
// (destination, endpoint id, QoS, path label) is hashed with a per-IPCP seed and
// mapped onto the set with weighted rendezvous (highest random weight)
// hashing. Every next hop gets a score from the flow hash and its own
// salted id, score = weight / -ln(u) with u the score hash mapped into
// (0,1), and the highest score wins (ties go to the smaller id). So
// removing one next hop moves only the flows that were on it, adding
// one moves about 1/(n+1) of the flows and all of them to the new one,
// and weights give proportional shares. The per-IPCP seed decorrelates
// the choice of consecutive stages, so flows that one IPCP sends to one
// neighbour still spread over all of that neighbour's next hops (no
// polarization). When all weights in a set are equal the logarithm is
// skipped: the raw score hash orders the same way.
//
// # Path bending
//
// The path label is the sender's handle on that choice (FlowBender,
// CoNEXT 2014): a flow that changes its label is rehashed at every hop
// that has more than one next hop for it, landing on another one with
// probability 1-1/n, while a flow that keeps its label keeps its path.
// The sending application's FRCT picks the label when it sees
// sustained congestion and hands it to its IPCP, which stamps it in
// the header of every packet of the flow; forwarding members only
// read it. A label above MaxLabel is malformed: [Layout.Label] reports
// [ErrLabel] and the packet is dropped and counted.
//
// A lookup costs O(n) in the size of the chosen set, which is intended
// for n up to about 16; nothing is cached. Lookup is lock-free and
// allocation-free: the table is immutable and published through an
// atomic pointer; updates copy it (sharing unchanged routes) under a
// mutex. [FIB.Replace] installs a whole table in one step and is the
// way to load SPF results; [FIB.Set] copies the route map on every
// call, so calling it per destination is quadratic in the table size.
// [FIB.RemoveNextHop] is the local-repair step of failover: it drops a
// dead lower flow from every entry at once.
//
// # Egress scheduling and ECN
//
// A [Scheduler] is the egress queue of one lower flow: a bounded FIFO
// per [Class] (management, then the QoS cubes low latency, best effort,
// bulk), served by strict priority except that a lower data class that
// waited SchedConfig.Guarantee packets of higher classes is served next
// (by default best effort keeps at least 1/5 and bulk 1/9 of a
// saturated egress), and management always goes first. A data packet
// queued behind more than MarkAbove packets of its class gets the
// congestion mark through SchedConfig.Mark, normally [Layout.RaiseECN]
// with a level that grows with the queue. Full queues drop and count.
//
// The unicast forwarding path (ipcpd/unicast/egress.go) gives each
// adjacency one, used only while the lower flow's channel is congested
// (above 64 KiB queued): packets are then copied into it, a goroutine
// per adjacency drains it into the channel, whose send buffer is made
// small so that the backlog builds here; management frames go into
// ClassManagement; a producer whose class is Full waits (as it waited
// on a full channel) instead of dropping. While the channel is short,
// packets go straight in, unscheduled and unmarked. A delivering member
// hands a marked packet to its application as a pipe.DataCE record.
package dt
