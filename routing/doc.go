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
//
// # Scale
//
// Measured with internal/scalesim (go run ./bench -scale): a layer of N
// members in virtual time running this package's Router, the layer's
// Directory and the enrollment messages unchanged (the unicast IPCP's
// flooding glue mirrored, 1 ms per hop), with the layer defaults
// (refresh 30 s, MaxAge 90 s, hold-down 5 ms), a ring with random
// chords of mean degree 4, and two names per member:
//
//	N     idle frames    idle bytes   link failure   member failure  SPF     dir snapshot  enrollment
//	      per member/s   per member/s conv, LSUs, SPF conv, LSUs, SPF  (1 run) (in parts)    response
//	100    19             1.1 kB       9 ms, 6, 1.00  8 ms, 15, 1.00  23 us    7.0 kB        8.0 kB
//	250    50             3.0 kB       9 ms, 6, 1.00 11 ms, 12, 1.02  83 us   17.9 kB       20.3 kB
//	500    99             6.0 kB      10 ms, 6, 1.00 11 ms, 21, 1.04  0.2 ms  36.2 kB       40.8 kB
//	1000  199            12.1 kB      11 ms, 6, 1.01 13 ms, 18, 1.09  0.4 ms  72.7 kB       81.8 kB
//
// (LSUs and SPF runs are per member; conv is the virtual time from the
// failure's detection until the last table changed.) On a grid (-topo
// grid, mean degree 3.9) the counts are about the same and convergence
// follows the diameter: 13 and 15 ms at N = 100, 29 and 44 ms at N = 1000
// (a 32 x 32 grid, 62 hops across).
//
//   - Failures stay cheap at these sizes: a failure floods a few LSUs
//     (two for a link, one per neighbour for a member), each member runs
//     SPF about once (the hold-down batches the burst), and every table
//     is the shortest paths again within 9-13 ms of the detection: the
//     hold-down plus the flood's hops.
//   - The idle refresh is what grows as N squared: every member floods
//     its LSU and its directory entry every RefreshInterval, and every
//     member receives each of them over most of its links, so a member
//     receives about 0.2 N frames a second at 30 s (half LSUs, half
//     directory entries, about 2.8 copies of each at mean degree 4) and
//     the layer 0.2 N^2.
//   - A member holds about 0.7 KiB per member of the layer (database
//     with its expiry heap, directory, table): 66 KiB at N = 100, 0.7 MiB
//     at 1000, so an IPCP's 64 MiB soft memory limit (ipcpd) is not the
//     bound before some 90000 members.
//   - Tolerable means that idle management costs a member under 1% of
//     one core. A frame costs about 5 us of CPU in this package and the
//     directory (decode, install, flood; measured in the simulation)
//     plus the I/O of a real lower flow, about 40 us per frame and its
//     acknowledgement (the cost per hello measured in issue 16), so
//     about 45 us: the refresh passes 1% of a core at N = 1100 (at 90 us
//     a frame, counting the acknowledgement as a second frame, at 550).
//     The frame rate is proportional to N / RefreshInterval: a refresh
//     of 5 min instead of 30 s moves that bound to N = 10000.
//   - A dead member's directory entry is dropped by each member at its
//     first directory refresh after a grace of one RefreshInterval from
//     the loss (layer.Directory.Expire: a short outage must not flush
//     names), so its names resolve for one to two RefreshIntervals
//     (30-60 s) after routing has converged.
//   - The first limit was not flooding but frame size: the enrollment
//     response (about 82 bytes per member) and the directory snapshot
//     sent to a new neighbour (73 bytes per member) were one frame each,
//     and a lower flow refuses a frame above its MTU: over udp4 on an
//     Ethernet MTU (1468 bytes of payload) enrollment stopped working at
//     about 18 members, over udp4 on loopback (65000) at about 800. The
//     unicast IPCP now cuts every management message to the lower flow's
//     MTU (ipcpd/unicast frag.go): Config.MaxMessageTo bounds this
//     router's floods and syncs per neighbour, and a single LSU larger
//     than a frame goes in parts. enroll.MaxMessage (1 MiB) still bounds
//     the enrollment response, at about 12800 members.
//
// What a larger layer needs, in order: a longer refresh (IS-IS
// refreshes every 15 min and OSPF every 30: floods are acknowledged and adjacencies sync on coming up, so the
// refresh only repairs), with the directory forgetting unreachable
// members when the table changes rather than at its refresh; and beyond
// some 10^4 members, areas (two-level link-state as in IS-IS: flooding
// within an area, summaries between them, or in a recursive network a
// layer per region under one that joins them) and a directory that is
// not flooded at all, such as the distributed hash table the C Ouroboros
// uses (each name stored at the few members nearest its hash, found in
// O(log N) steps).
package routing
