// Package shim is the protocol engine of every shim IPCP kind: udp4 and
// udp6 (ipcpd/udp), eth-dix (ipcpd/eth) and tap (ipcpd/tap). Engine[A]
// owns the directory, the allocation handshake, endpoint ids,
// deallocation, the caps and answer budgets, and every timer, on an
// injected clock (lib/clock); a medium is a Link[A] over its own
// addresses A: it sends management messages (package wire), feeds the
// engine what it receives (Engine.Mgmt for management messages,
// Engine.Data to find a data frame's flow), and runs each flow's data
// path (Link.Run). The media:
//
//   - Ether (this package) is the Ethernet one, shared by eth-dix and
//     tap, which only open their device (an Opener returning a Device:
//     its Medium plus the interface's index, MAC and MTU). It frames
//     messages and data as package frame says, reads the device in one
//     goroutine and runs one writer goroutine per flow.
//   - ipcpd/udp is the udp one: a socket read with recvmmsg in batches,
//     flows sent with sendmmsg, and per-flow direct data sockets, whose
//     ports travel in the medium field of the handshake (the Link's
//     Offer and Agreed hooks).
//
// Where this departs from the plan the engine was built on (a Link with
// a FlowUp hook, the Ethernet framing moved to ipcpd/eth): Offer and
// Agreed are two hooks because a requester offers its data port before
// it knows the answer and a responder must hand its socket over before
// its "ok" goes out; Ether stays in this package because eth-dix and tap
// share it and the engine's tests drive it frame by frame (Input) on a
// fake segment in virtual time.
//
// # Names
//
// Register records a name's hash locally; nothing is announced. Query
// looks the hash up in a cache of answers (CacheTTL, default 30 s, at
// most 4096 entries; package dir) and otherwise asks: on udp every
// configured peer, repeating to the silent ones every QueryRetry
// (250 ms) for QueryTimeout (750 ms there), settled as soon as one says
// yes or all said no (every IPCP answers yes or no); on Ethernet the
// broadcast address (Config.Broadcasting), repeated every QueryRetry
// until QueryTimeout (1 s), settled by the first station that says yes
// (stations answer only for names they have). Both are well inside the
// IRMd's 3 s query budget. Answers nobody asked for are counted and
// dropped, so they cannot fill the cache; a refusal or a vanished peer
// drops the entry. Answering is rate-limited (package admit: 1000/s,
// burst 100, shared by all sources that are not configured peers, and
// a tenth of the rate and half the burst per source), so a query flood
// costs a bounded number of replies and one noisy source cannot silence
// the others; the excess is counted. Refusals of allocation requests
// and other answers that leave no state draw on the same budget. Names
// registered at this same IPCP are not reported reachable: Query is
// about the wire, and the IRMd reaches local names through a local
// layer.
//
// # Flows
//
// The requester picks its eid and sends an alloc request (its eid, the
// name hash, its MTU, the medium field, the QoS), repeated every
// AllocRetry (250 ms). The responder answers "pending" at once (and to
// every repeat) while its IRMd looks for an acceptor (Host.Arrive,
// bounded by ArriveTimeout), then "ok" with its own eid and the agreed
// MTU (the smaller of both ends'), or a refusal. AllocMisses (4)
// requests in a row without any answer mean the peer is gone: the
// allocation fails with an error saying so and the cache entry goes; no
// allocation takes longer than AllocTimeout (10 s, longer than the
// IRMd's 5 s wait for an auto-started program). A "busy" answer (the
// responder's caps are full) is not final: the requester keeps asking
// until the allocation times out. A repeated request for a flow already
// set up but not yet confirmed gets the same "ok" again; one for a
// confirmed flow comes from a requester that was restarted on the same
// address and hands out the same eids (a killed lower IPCP brought
// back): the old flow ends as if deallocated and the request is served
// as a new one; one for a flow ending here gets "pending" until it is
// gone. An "ok" that arrives after the
// requester gave up is answered with a dealloc, so no half-flow
// lingers. The requester confirms an "ok" (ConfirmRepeats confirmations
// 100 ms apart, and one more for every repeated "ok"); data from it
// confirms the flow too. Endpoint ids are handed out round robin within
// the medium's range (1..65535 on Ethernet, whose frame header has 16
// bits for them; 32 bits on udp), so that a freed eid is not reused
// soon; a message naming an eid beyond the range is dropped as
// malformed.
//
// Deallocation: the end whose application closes (or dies) sends a
// dealloc, repeated every AllocRetry until acknowledged (DeallocTries,
// 3); the other end ends its flow with a Dealloc record, so that its
// application reads EOF, and acknowledges every well-formed dealloc (one
// for no flow of its own within the answer budget). On Close every flow
// gets one dealloc, unacknowledged, and the application sees its IPCP
// gone.
//
// # Limits
//
// Anyone who can send the medium a frame can send allocation requests,
// so what they can make the engine hold is capped (package admit):
// incoming flows in every state (MaxFlows 1024, MaxFlowsPerPeer 64 per
// source address), and among them the pending ones, not yet confirmed:
// waiting for the IRMd or answered and waiting for the requester's
// confirmation (MaxPending 64, MaxPendingPerPeer 8). When peers are
// configured, the other sources together get at most half of each
// total. A flow not confirmed within ConfirmTimeout (3 s) is ended: one
// dealloc to the requester, EOF to the application. A request beyond a
// cap is refused as busy and counted by cap. Confirmed flows are not
// expired when idle: raw flows have no keepalive, so an idle flow cannot
// be told from a dead peer; the per-source cap bounds them, and
// deallocation ends them. Outgoing flows are not capped here (local
// users allocate them through the IRMd). No answer is larger than the
// message that caused it (see package wire).
//
// # Data path
//
// The media own it (see above and ipcpd/udp). Engine.Data finds a data
// frame's flow without allocating and checks that it came from the
// flow's peer; Engine.Deliver hands one payload to the application with
// a write deadline of 50 ms (renewed at most every 25 ms), so one
// application that stopped reading cannot stall the medium for the
// others (udp gathers the datagrams of one flow in a receive batch into
// one write of its own instead).
//
// # Carrier
//
// SetCarrier (on Ethernet driven by a netlink.Watcher on the device)
// marks every flow DOWN at once when the link loses carrier or is set
// down, and UP when it is back, by writing pipe.Down / pipe.Up into each
// flow's data channel in band; flows keep their endpoints across a
// flap. While the carrier is down, queries answer "unreachable" and
// allocations fail at once. A udp medium's carrier is always up.
//
// # Bad input
//
// Short or garbled frames and messages, messages of other versions
// (logged with both versions) or of unknown types, eids beyond the
// medium's range, data for unknown endpoint ids or from the wrong peer,
// and on Ethernet other EtherTypes, frames for other stations, own
// frames and group sources: each is counted (see Counters and the
// media's own, printed by `irm layer show`) and dropped. Nothing on the
// receive path panics or blocks on a peer.
//
// # Show
//
// Every kind shows the same layout after its own lines: carrier,
// names, resolved names, limits, up to 32 flows, and one counter per
// line, the engine's names (Counters.List) then the medium's own.
package shim
