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
//	+-------+-------+-------+-------+
//	|version| flags |    window     |  version = 1; window in packets
//	+-------+-------+-------+-------+
//	|        sequence number        |  DATA and FIN only
//	+-------------------------------+
//	|     acknowledgement number    |  next sequence number expected
//	+-------------------------------+
//	|          SACK bitmap          |  bit i: ack+1+i already received
//	+-------------------------------+
//	|     payload (DATA only) ...
//
// Flags: DATA 0x01, ACK 0x02, FIRST 0x04, LAST 0x08, SACK 0x10,
// KEEPALIVE 0x20, FIN 0x40; 0x80 is reserved. ParseHeader rejects
// unknown flags, fragment flags without DATA, SACK without ACK, DATA
// with FIN or KEEPALIVE, FIN with KEEPALIVE and payload without DATA.
// Every packet carries ACK, so ACKs ride on data for free.
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
// # Reliability
//
// With Config.Reliable, each DATA packet is kept until cumulatively
// acknowledged. The retransmission timeout follows RFC 6298 (SRTT,
// RTTVAR, Karn's rule: no samples from retransmitted packets,
// exponential backoff, bounds RTOMin and RTOMax); the backoff is also
// dropped when data sent only once is acknowledged, since with a hole
// early in most windows Karn's rule leaves few samples. Three duplicate
// ACKs, or three SACKed packets above a hole, retransmit the hole at
// once, once per timeout. The receiver ACKs every second packet, out-of-order packets and
// filled holes at once, otherwise within Config.DelayedACK. There is no
// congestion control: the window alone paces the sender.
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
// in flight, so a slow reader blocks Write (until the write deadline)
// and memory stays bounded on both sides. A zero window is probed with
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
