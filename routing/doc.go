// Package routing is ouro's link-state routing: the wire format of
// link-state updates, the link-state database with sequence numbers and
// ageing, shortest-path-first with equal-cost multipath and loop-free
// alternates, and Router, the stateful engine that ties them together
// behind a small I/O edge (a Send callback out, Receive in, OnTable for
// the resulting forwarding table).
//
// # Model
//
// Every member of a layer originates one link-state update (LSU): its
// address, a sequence number, and the list of its adjacencies with their
// costs. LSUs are flooded hop by hop; every router keeps, per origin, the
// LSU with the highest sequence number. A withdrawal is simply a newer LSU
// without the link, flooded at once when the adjacency goes down: routing
// never waits for ageing to notice a failure. Ageing (MaxAge) only
// garbage-collects members that died: every origin refreshes its own LSU
// every RefreshInterval (minus a small deterministic jitter), and the age
// travels with the LSU so that a dead member disappears from every
// database at about the same time instead of being resurrected by
// database syncs.
//
// # Choices
//
//   - Cost rule: an edge u->v is used only when both u and v announce each
//     other (two-way check), and the direction u->v costs what u
//     announces (each direction uses its own announced cost, as in OSPF
//     and IS-IS). A cost of 0 is treated as 1 (the default cost).
//   - Policies: PolicyECMP (default) keeps every equal-cost first hop;
//     PolicyLinkState keeps one, the lowest neighbour address among them;
//     PolicyLFA keeps every equal-cost first hop and adds the loop-free
//     alternates of RFC 5286 (basic condition
//     dist(N,D) < dist(N,S) + dist(S,D)), computed by one SPF rooted at
//     each neighbour. All slices in a Route are sorted by address.
//   - Hold-down: events (adjacency changes, newer LSUs, ageing) schedule
//     one SPF run HoldDown (default 5 ms) after the first event of a
//     burst; further events in the window are batched into that run.
//   - NeighborDown patches the current table at once (the dead neighbour
//     leaves every next-hop set; alternates are promoted where it was the
//     only next hop) and hands it to OnTable before the withdrawal's SPF.
//   - No flap damping here: the unicast IPCP damps per lower flow
//     (ipcpd/unicast adj.go holdTime) before it reports a neighbour up,
//     so one implementation holds a flapping link out.
//   - A router that receives its own LSU with a sequence number at least
//     as high as its own (it restarted, or someone forged it) jumps past
//     it and re-originates (counted as OwnNewer).
//   - Sequence numbers never wrap (RFC 2328 12.1.6, ISO 10589 7.3.16):
//     a router that needs a sequence number above MaxSeq floods a flush
//     (its LSU at MaxSeq, MaxAge old), waits FlushWait (default 100 ms,
//     for the flush to reach every member) and originates again at 1.
//     A flush removes exactly the instance it names and leaves a
//     tombstone until MaxAge: late copies of that instance are refused,
//     any other instance (the restart) replaces it. A flush of an
//     instance a router does not hold is ignored and not flooded, so a
//     forged flush cannot remove a newer copy or circulate. With
//     IS-IS's wait of MaxAge before restarting, a forged MaxSeq frame
//     would silence a member for minutes; the short wait is enough
//     because flooding is reliable per neighbour (the IPCP acknowledges
//     routing frames) and a flush travels ahead of the restart.
//   - A router that receives an LSU older than the one it holds answers
//     the sender with its newer copy.
//   - The database is bounded (Config.MaxOrigins, default 65536 members,
//     tombstones included; Config.MaxLinks, default 2^20 links over all
//     members): an LSU that would pass a bound is refused and counted
//     (LSUsRefused), so a member flooding LSUs of made-up origins cannot
//     grow it further; what it put there ages out after MaxAge.
//
// All timers go through an injected clock.Clock, so a whole layer of
// Routers can be simulated in virtual time in one process.
package routing
