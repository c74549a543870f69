// Package frct is FRCT, the flow and retransmission control that runs
// inside the application, end to end, over an unreliable packet service
// that keeps packet boundaries (a flow's raw channel). A Conn turns such
// a Lower into a net.Conn: sequenced, optionally reliable, flow
// controlled, with keepalives and an orderly close.
//
// # Header
//
// Every packet starts with a fixed 16-byte header, network byte order:
//
//	 0       1       2       3
//	+---+---+-------+-------+-------+
//	|frm|ver| flags |    window     |  ver = 1, frm = form; window in packets
//	+---+---+-------+-------+-------+
//	|        sequence number        |  DATA and FIN only
//	+-------------------------------+
//	|     acknowledgement number    |  next sequence number expected
//	+-------------------------------+
//	|          SACK bitmap          |  bit i: ack+1+i already received
//	+-------------------------------+
//	|     payload (DATA only) ...
//
// The first byte is the version in its low four bits and the form of
// the packet in its high four: 0 plain, 1 packed (a DATA packet whose
// payload is several whole messages, see Packing). Every flag bit was
// taken, and the version byte had room: a receiver from before packing
// reads a packed packet as version 17 and drops it as malformed
// (counted); any other form or version is dropped and counted the same
// way. Both ends of a flow run the same FRCT, so no negotiation.
//
// Flags: DATA 0x01, ACK 0x02, FIRST 0x04, LAST 0x08, SACK 0x10,
// KEEPALIVE 0x20, FIN 0x40, ECE 0x80 (ECN echo). ParseHeader rejects
// fragment flags without DATA, SACK or ECE without ACK, DATA
// with FIN or KEEPALIVE, FIN with KEEPALIVE, payload without DATA and
// a packed packet that is not DATA|FIRST|LAST or whose records do not
// decode. Every packet carries ACK, so ACKs ride on data for free.
//
// # Messages
//
// One Write is one message (Writes longer than Config.MaxMessage are
// split). A message spans consecutive sequence numbers, one per packet,
// the first fragment flagged FIRST and the last LAST (a one-packet
// message has both). Read never mixes two messages: a large enough
// buffer gets a whole message; a smaller one gets it over several Reads,
// so io.Copy, bufio and crypto/tls work unchanged. A message is handed
// to Read only when complete; the fragments of the one being
// reassembled are not counted in the window, so a message larger than
// the window still gets through (reassembly is bounded by MaxMessage).
// A Write cut short by its deadline leaves a shorter message: the next
// FIRST, or the FIN, ends it, and the reader gets exactly the bytes
// Write reported.
//
// # Packing
//
// A reliable connection (with Config.SendBuffer, on by default) packs
// small messages that have to wait, the way TCP's send buffer and
// autocorking fill segments: a Write of a message that fits in one
// packet with a record header goes out alone, at once, exactly as
// before, when nothing is buffered and the windows and the pacer let
// it (so a ping-pong or a lone request pays no extra latency). When it
// cannot (a window is full, the pacer holds the sender back, or other
// messages wait), Write copies it into the send buffer and returns;
// Write blocks only while the buffer holds Config.SendBuffer bytes (256
// KiB), until its deadline. Whenever the windows open (an ACK, the
// pacer's timer, a Write) the buffered messages leave in order, as many
// whole messages as fit in one packet going as one packed DATA packet:
//
//	+-------+-------+----------------+-------+-------+---------
//	| length (2 B)  | message ...    | length (2 B)  | message ...
//	+-------+-------+----------------+-------+-------+---------
//
// 1 to MaxPacked (64) records, each a big-endian length of 1 to 65535
// and that many bytes, filling the payload exactly; the packet is
// FIRST|LAST and takes one sequence number, is acknowledged, SACKed and
// retransmitted as a unit, and counts once in the receive window. A
// packet is at most the lower's MTU and at most half the congestion
// window, so a window always holds two (as TCP sizes TSO packets); a
// lone buffered message goes as a plain packet. The receiver checks the
// records before it accepts the packet (a lying length, an empty
// record, more than MaxPacked records: the whole packet is a counted
// malformed drop, its work bounded by its length) and delivers each
// record as a message of its own: Read and the message semantics are
// unchanged. The records stay in the packet's buffer, which the last
// of them owns. Close and CloseWrite send the FIN after everything
// buffered; Close's linger waits for it and counts buffered messages it
// could not send as unacknowledged. Only one flush of buffered packets
// runs at a time (the reader, the pacer's timer and the writer all
// drain the buffer), so its packets leave in sequence order. While a
// writer waits for room, the ACK or the pacer wakes it and it sends the
// buffered packets itself, as a writer blocked on the window did before
// packing: the reader sends them only when no writer waits, so it does
// not sit in a write to a full lower while ACKs wait to be read (two
// flows over two 100 Mbit/s shaped paths lost up to a third of their
// rate to timeouts that way). Messages
// too large for a record, and unreliable connections, are sent as
// before; a large message waits for the buffer to empty first.
//
// While two or more packets are in flight, a message that would not
// fill a packet is held in the send buffer until the next ACK, as
// Nagle's rule holds TCP's small segments: the receiver acknowledges
// every second segment at once, so that ACK is at most a round trip
// away, and what the writer adds meanwhile leaves with it. A packet is
// full when one more record as long as its last would not fit, so a
// stream of messages that fill packets on their own (1400 bytes over a
// 1500-byte path) is never held. A lone message, a ping-pong or a
// request answered before the next one finds fewer than two packets in
// flight and goes at once; a burst of more than two small messages
// waits up to a round trip for its third. Config.NoDelay, or
// Conn.SetNoDelay (flow.Flow.SetNoDelay for an application), turns the
// hold off, as TCP_NODELAY does; nothing is held while the FIN, a large
// message or a writer waiting for room is behind the buffer. Without
// the hold, a writer slower than the path found the window open and
// sent every message alone, and on loopback, where a flow's MTU is
// about 64 KiB and the cost is per packet in every process a packet
// crosses, that made most DATA packets lone 1400-byte ones (15-21
// messages to a packet on average). With it a bulk flow of 1400-byte
// messages averages 45 to a packet.
//
// # Reliability
//
// With Config.Reliable, each DATA packet is kept until cumulatively
// acknowledged. The retransmission timeout follows RFC 6298 (SRTT,
// RTTVAR, Karn's rule: no samples from retransmitted packets,
// exponential backoff, bounds RTOMin and RTOMax); the backoff is also
// dropped when data sent only once is acknowledged, since with a hole
// early in most windows Karn's rule leaves few samples. Three duplicate
// ACKs, or three SACKed packets above a hole, retransmit the hole at
// once, once per timeout. The receiver ACKs every second segment (a
// packet counts as its size in 1500-byte segments, at least one, so a
// large packet is acknowledged at once), out-of-order packets and
// filled holes at once, otherwise within Config.DelayedACK. Over a
// BatchLower (a flow's channel) it reads up to 32 packets with one
// system call and handles them under one lock; then one ACK covers up
// to 8 in-order packets of the batch (a stretch ACK, as TCP's with
// GRO), and everything a batch or a writer builds is written with one
// call. On loopback, where every packet costs a wake-up and a system
// call in each process it crosses, ACKs were a third of the packets.
// After a
// timeout, once the retransmission is acknowledged, the rest of the
// window sent before the timeout is resent a congestion window at a
// time (NewReno's partial ACK), so an outage costs one backed-off
// timeout, not one per lost packet.
//
// # Congestion control
//
// Reliable connections run congestion control in the sender; an
// unreliable one runs it when Config.Congestion is CongestionOn (the
// flow library sets it from qos.Spec.Congestion): it then keeps the send
// time of each packet in flight (no copy: nothing is resent), its writer
// waits for the congestion window and the pacer though never for the
// peer's window, losses show as delay and ECN only, and a timeout gives
// up on the packets in flight and cuts the window.
// The congestion window counts bytes, in segments of 1500 bytes: a
// packet counts as its size on the wire over 1500, and at least one
// segment, so packets up to an Ethernet MTU count one each, as before,
// while a 64 KiB packed packet counts 43 (the per-packet cost of a path
// is real too: small packets are not made cheaper than one segment).
// The window is counted against the segments in flight less those
// SACKed, next to the receive window, which counts packets; a packet
// may always go when nothing is in flight, so a window smaller than one
// large packet never stalls the flow. A token bucket paces segments at
// gain*cwnd/SRTT (gain 2 in slow start, 1.25 after, as Linux paces
// TCP), bursts at most 1 ms of that rate; a large packet takes all its
// tokens at once and the bucket owes the rest. Slow start and
// additive increase grow by segments acknowledged.
//
// The controller is delay-based in the manner of Vegas, with DCTCP's
// ECN reaction and loss as a backstop:
//
//   - slow start doubles the window each round trip until the flow has
//     Config.CCQueue packets of its own queued, or a loss or mark;
//   - once per round trip (a round ends when everything sent at its
//     start is acknowledged) the flow estimates how many of its packets
//     wait in the bottleneck queue, cwnd*(RTT-base)/RTT with RTT the
//     mean of the round's samples and base the smallest RTT of the last
//     3-6 s; above its allowance (CCQueue packets, or 1 ms of queueing
//     delay at its rate less CCQueue packets when that is more) it gives back half the
//     excess, otherwise it
//     grows by one packet (less when fewer than a window were
//     acknowledged, nothing when the application, not the window,
//     limited sending);
//   - ECN echo: the share F of packets acknowledged with ECE in a round
//     feeds alpha = (1-1/16)alpha + F/16, and a round with marks keeps
//     1-alpha/2 of the window (DCTCP), once per window of data;
//   - a loss found by SACK or duplicate ACKs keeps 0.7 of the window, a
//     timeout 0.5, once per window of data; the window never goes below
//     2 packets, so a back-off never stalls a flow; a timeout proves
//     spurious, and its cut is undone, when the first new ACK after it
//     also covers the packet after the one resent, sent once and never
//     SACKed (the idea of F-RTO, RFC 5682: with RTOMin at 2 ms a
//     descheduled peer fires the timer often);
//   - a flow whose base RTT no sample confirmed for 2 s drains to 2
//     packets for one round trip and remeasures it: a flow that came to
//     a queue others had built counts that queue in its base, and would
//     otherwise keep it standing and take more than its share.
//
// Why this design. Every flow aims at the same number of its own
// packets in the queue, so at one bottleneck they settle at equal
// rates (rate = CCQueue/queueing delay, the same for all), and the
// queue stays at CCQueue packets per flow (0.9 ms per flow at 100
// Mbit/s) however deep the buffer: a drop-tail bottleneck is kept full
// without being filled. An absolute delay target (LEDBAT, Swift) was
// tried first and shares badly: the flow whose base estimate is a few
// hundred microseconds lower sees the common queue as further over its
// target, and a 0.1 ms difference split two flows 65/35. Counting
// queued packets makes the error relative to the whole queueing delay
// instead. The 1 ms allowance changes nothing where 1 ms holds fewer
// than 2*CCQueue packets of the flow (about 180 Mbit/s with the
// default 8 and 1400-byte packets); it is for fast paths whose RTT is
// mostly wake-up latency across processes (loopback: a 50 us minimum, 0.4 ms typical),
// where 8 packets in flight capped a flow at about 200 Mbit/s and the
// processes on the way need a queue to batch what waits for them. The
// excess a flow gives back, rate*(delay-1 ms), is proportional to its
// rate, so flows above it still converge (AIMD), and a slower flow
// keeps aiming at CCQueue packets, so it grows until every flow has at
// least that rate. Allowing the whole 1 ms (not 1 ms less CCQueue
// packets) let a flow on the 100 Mbit/s bench path keep more queue: a
// ping beside it averaged 1.12-1.19 ms against 0.88-0.97 before; 0.5 ms
// broke the fairness of four flows in the simulator (Jain 0.85).
// BBR was not taken: its bandwidth model needs per-packet
// delivery-rate state and its ProbeBW cycles keep up to a BDP queued
// per flow; Copa's velocity machinery buys faster convergence than a
// host whose ACK clock jitters by a millisecond can use. The mean, not
// the minimum, of a round's RTT samples is used: a flow with fewer
// packets has fewer samples, and their minimum is larger, which cut
// slow flows harder than fast ones. Against loss-based flows that fill
// buffers (CUBIC) such a flow yields; the deployment here is the
// layer's own flows, which all run this controller.
//
// ECN: a lower that implements ECNLower reports whether a packet
// arrived marked (the flow library's channel does: the IPCP delivers a
// packet the layer marked as a pipe.DataCE record); the receiver sets ECE on the ACKs that acknowledge
// marked packets and, as DCTCP's receiver does, sends a pending ACK at
// once when the mark changes so the echo stays exact.
//
// Path bending (FlowBender, CoNEXT 2014): a connection with congestion
// control over a lower that implements Bender (the flow library's
// channel does: a pipe.Bend record to its IPCP, which stamps the label
// in the unicast layer's data header, where every hop hashes it with
// the flow key) moves to another equal-cost path when its own one stays
// congested: bendRounds (3) round trips in a row with at least
// bendShare (25%) of the acknowledged packets echoed marked, or a
// second retransmission timeout in a row (a single one is most often a
// late ACK on a loaded host), pick a new label (never the current one; a
// hop with n equal next hops moves the flow with probability 1-1/n).
// Bends are rate-limited: the next waits at least bendHold (8) round
// trips, a bend within four holds of the last doubles the hold (to 256
// round trips), and a quiet spell resets it, so a flow between two
// congested paths bends ever more rarely instead of flapping. A bend
// changes nothing else: no window cut, no state change (a flow never
// reports DOWN for it). The trigger is marks or timeouts, not delay: two
// flows of this controller on one path keep its queue short by design,
// so delay alone does not tell a shared path from a busy one; a path
// that queues without marking (a tbf in a lower layer) only bends its
// flows on timeouts. Counted in Stats (Bends, BendsHeld, BendErrors,
// Label); Config.NoBend turns it off.
//
// Hostile peers. Growth counts packets newly acknowledged, never ACKs,
// so ACK division and duplicate ACKs buy nothing; ACKs for data never
// sent are dropped (ForgedAcksDropped); ECE can only slow the sender
// down; the receive window and Config.Window cap the window whatever
// the peer claims. Not defended: a receiver that acknowledges data in
// flight it has not received yet (optimistic ACKs) hides loss; the
// header has no room for the nonce of RFC 3540, so only the delay
// signal, which such a receiver cannot hide without acknowledging
// early, keeps that sender off a full queue.
//
// The receiver keeps out-of-order packets in a reorder buffer of at most
// Config.ReorderBuffer packets. Duplicates and late copies are dropped
// and counted; so are sequence numbers outside the window and packets
// acknowledging data never sent (forged ACKs), which are dropped whole.
//
// Without Reliable the connection is sequenced: no retransmission, no
// duplicates, never out of order; a complete message is delivered as
// soon as it is in, giving up on anything older. The writer never
// blocks on the peer, and a reader too slow for Window packets loses
// messages (Stats.OverflowDropped).
//
// # Flow control
//
// The receiver advertises in every packet how many more packets it can
// buffer: Config.Window less the packets of complete messages the
// application has not read. The sender never sends beyond the largest
// edge (ack + window) it was given, nor keeps more than Window packets
// in flight, so a slow reader blocks Write (until the write deadline;
// with a send buffer, once it is full) and memory stays bounded on both
// sides: Window packets of at most the MTU each, a packed one holding
// at most MaxPacked messages. A zero window is probed with
// KEEPALIVE packets, backed off like the RTO. Both ends start by
// assuming the peer uses the same Window, and both number their first
// packet 0: flows are fresh channels, so there is no handshake.
//
// # Liveness and close
//
// A side that sent nothing for Config.KeepAlive sends a KEEPALIVE,
// which the peer answers with an ACK at once. When nothing arrived for
// Config.PeerTimeout, or the lower flow fails, Read (once the buffered
// data is read) and Write fail with an error wrapping ErrPeerGone.
//
// Close (and CloseWrite, which keeps reading) sends a FIN after the
// data already written. The FIN takes a sequence number and is
// retransmitted until acknowledged, so the peer's Read returns io.EOF
// exactly after the last byte. Close then waits up to Config.Linger for
// everything to be acknowledged, closes the lower flow and stops the
// connection's reader goroutine and timers.
//
// All timers run on Config.Clock, so tests drive a Conn in virtual time.
package frct
