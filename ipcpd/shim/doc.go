// Package shim is the protocol engine shared by the eth-dix and tap IPCP
// kinds: both put the frames of package frame on an Ethernet segment,
// one through an AF_PACKET socket, the other through a TAP device. A
// kind supplies an Opener that returns a Device (its Medium plus the
// interface's index, MAC and MTU); the engine does the rest. The udp4
// and udp6 kinds (ipcpd/udp) do not run on it yet: they share its caps,
// answer budget (package admit), directory (package dir) and
// management codec (package wire, with lib/qos), and keep their own
// handshake until they become a medium of this engine.
//
// # Names
//
// Register records a name's hash locally; nothing is announced. Query
// looks the hash up in a cache of answers (CacheTTL, default 30 s, at
// most 4096 entries) and otherwise broadcasts a QueryReq, repeated every
// QueryRetry (250 ms) until QueryTimeout (1 s) — well inside the IRMd's
// 3 s query budget. The first station that answers is cached. Replies
// nobody asked for are counted and dropped, so they cannot fill the
// cache. Answering is rate-limited (token bucket, 1000/s, burst 100,
// shared by all sources, and one per source MAC with a tenth of the
// rate and half the burst), so a query flood costs a bounded number of
// replies and one noisy station cannot silence the others; the excess
// is counted. Refusals of allocation requests draw on the same budget.
// Names registered at this same IPCP are not reported reachable: Query
// is about the wire, and the IRMd reaches local names through a local
// layer.
//
// # Flows
//
// Allocation is a request/response carrying both endpoint ids: the
// requester picks its eid and sends AllocReq (its eid, the name hash,
// the QoS) to the station that answered the query; that station asks its
// IRMd for an acceptor (Host.Arrive, bounded by ArriveTimeout, 7 s) and
// replies with its own eid, or refuses with a reason. The request is
// repeated every AllocRetry (1 s) until AllocTimeout (8 s, longer than
// the IRMd's 5 s wait for an auto-started program); the replier
// recognises repeats by (MAC, eid) and answers them again. A peer that
// vanishes mid-allocation fails it with an error naming the peer and the
// timeout, and drops it from the cache. A reply that arrives after the
// requester gave up is answered with Dealloc, so no half-flow lingers.
// The request carries the requester's flow MTU and the answer the
// agreed one, the smaller of both ends'. "pending" and "busy" answers
// are not final. The messages are those of package wire (with eids of
// at most 16 bits here, as the frame header has no room for more).
// Endpoint ids are 1..65535, handed out round robin so that a freed eid
// is not reused soon. The requester confirms an OK with Confirm
// (ConfirmRepeats times, 100 ms apart, and again for every repeated
// OK); data from it confirms the flow as well.
//
// # Limits
//
// Any station on the segment can send allocation requests, so what they
// can make the engine hold is capped (package ipcpd/shim/admit, shared with
// ipcpd/udp): incoming flows in every state (MaxFlows 1024, MaxFlowsPerPeer
// 64 per source MAC), and among them the pending ones, not yet
// confirmed: waiting for the IRMd (ArriveTimeout) or answered and
// waiting for the requester's Confirm (MaxPending 64, MaxPendingPerPeer
// 8). A flow not confirmed within ConfirmTimeout (3 s) is ended: a
// Dealloc to the requester, EOF to the application. A request beyond a
// cap is refused as busy and counted by cap; busy is not final for the
// requester, which repeats its request until AllocTimeout. Confirmed flows are not
// expired when idle: raw flows have no keepalive, so an idle flow cannot
// be told from a dead peer; the per-source cap bounds them, and
// deallocation ends them. Outgoing flows are not capped here (local
// users allocate them through the IRMd). No answer is larger than the
// message that caused it (see package wire).
//
// Deallocation is one Dealloc message to the peer (best effort: raw
// flows have no keepalive, FRCT flows time out on their own), sent when
// the application closes its flow or dies and when the IPCP closes; the
// peer's application reads EOF.
//
// # Data path
//
// One reader goroutine per device reads frames into one preallocated
// buffer and writes payloads straight into the flow's data channel; one
// writer goroutine per flow reads the application's packets into a
// preallocated buffer behind room for the header and sends the frame as
// is. Neither allocates per frame. A data frame must come from the
// flow's peer MAC to the station's own MAC. Delivery to an application
// that stopped reading gives up after 50 ms (the channel holds 4 MiB),
// so one stuck application cannot stall the segment for the others.
//
// # Carrier
//
// SetCarrier (driven by a netlink.Watcher on the device) marks every
// flow DOWN at once when the link loses carrier or is set down, and UP
// when it is back, by writing pipe.Down / pipe.Up into each flow's data
// channel in band; flows keep their endpoints across a flap. While the
// carrier is down, queries answer "unreachable" and allocations fail at
// once.
//
// # Bad input
//
// Short, truncated or garbled frames, other EtherTypes, frames for other
// stations, frames for unknown endpoint ids or from the wrong peer,
// management messages of other versions (logged, with both versions)
// or with unknown types or eids beyond 16 bits: each is
// counted (see Counters, printed by `irm layer show`) and dropped.
// Nothing on the receive path panics or blocks on a peer.
package shim
