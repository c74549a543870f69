// Package scalesim simulates one unicast layer of many members in
// virtual time, in one process, to measure how its management scales:
// link-state routing, the directory and enrollment, over in-memory
// links on lib/clock's Fake clock.
//
// # What is real and what is modelled
//
// Real (the production code, unchanged, called as the unicast IPCP
// calls it):
//   - routing.Router: LSU origination, flooding, database syncs on
//     adjacency up, sequence numbers, ageing, hold-down, SPF with ECMP,
//     the wire format (routing.Encode/Decode on every message);
//   - layer.Directory: SetOwn, Refresh, Apply with its verdicts,
//     Snapshot, Expire, Lookup, and the wire format (layer.EncodeDir,
//     layer.DecodeDir on every message);
//   - enrollment: enroll.Request and enroll.Response encoded and decoded
//     with enroll.Encode/Decode, the response built as serveEnroll
//     builds it (configuration, directory snapshot, addresses in use),
//     the address picked with layer.Config.PickAddress;
//   - the layer's default configuration (layer.Defaults: 5 ms hold-down,
//     30 s refresh, 90 s MaxAge).
//
// Modelled (mirrors of the unicast IPCP's glue, ipcpd/unicast adj.go and
// unicast.go, which is tied to lower flows and goroutines):
//   - the directory flooding of adj.go (receiveMgmt, floodDir, sendDir,
//     floodOwnDir) and the refresh of unicast.go (onRefresh: re-flood the
//     own entry every RefreshInterval less up to a quarter at random,
//     expire entries older than MaxAge or unreachable in the routing
//     table for a refresh interval; onTable's Reach); the withdrawal and restart
//     at MaxDirSeq is left out (it needs 2^64 updates);
//   - lower flows: a message sent in one round is delivered in the next,
//     one round being Config.Hop of virtual time (propagation plus
//     processing per hop); delivery is reliable and in order, as the
//     IPCP's acknowledged management frames make it (mgmt.go); the
//     acknowledgements themselves are not sent (one per frame);
//   - failure detection: a failed link or member is reported to its
//     neighbours' routers at once (NeighborDown), as the keepalive does
//     after its detection time, which is not part of these figures;
//   - the unicast IPCP starts its directory refresh timer when it joins;
//     the members of the simulation join at the same virtual instant,
//     so each member's first directory refresh is spread uniformly over
//     one interval, starting 1 s after the bring-up (as members that
//     joined at different times are, each with its table complete by
//     its first refresh: see Expire).
package scalesim

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"time"

	"github.com/ouro-net/ouro/enroll"
	"github.com/ouro-net/ouro/layer"
	"github.com/ouro-net/ouro/lib/clock"
	"github.com/ouro-net/ouro/routing"
)

// Topologies.
const (
	// TopoRandom is a ring with random chords added until the mean
	// degree is Config.Degree: connected, two-connected, with a small
	// diameter (a small world).
	TopoRandom = "random"
	// TopoGrid is a grid of ceil(sqrt N) columns, each member linked to
	// its right and lower neighbours (mean degree just under 4).
	TopoGrid = "grid"
)

// Config describes a simulated layer.
type Config struct {
	// N is the number of members (at least 3).
	N int
	// Topology is TopoRandom (default) or TopoGrid.
	Topology string
	// Degree is the mean degree of TopoRandom (default 4, at least 2).
	Degree int
	// Names is how many names each member registers (default 2).
	Names int
	// Hop is the virtual time a message takes over one link (default 1 ms).
	Hop time.Duration
	// Seed makes the topology and the failures reproducible.
	Seed uint64
	// Layer is the layer's configuration (default layer.Defaults("scale")).
	Layer *layer.Config
}

// Sim is one simulated layer. It is not safe for concurrent use: the
// whole layer runs on the goroutine that calls its methods.
type Sim struct {
	cfg     Config
	lc      layer.Config
	clk     *clock.Fake
	start   time.Time
	members []*member
	byAddr  map[uint64]int32
	rng     *rand.Rand

	queue []msg // sent in this round, delivered in the next

	// LSUs received whose origin is in attrib (an event's).
	attrib     map[uint64]bool // origins whose LSUs attribLSUs counts
	attribLSUs uint64
	// Largest routing and directory messages sent.
	maxRouting, maxDir int
	lastChange         time.Time // last time any table changed
}

type kind uint8

const (
	kindRouting kind = iota
	kindDir
)

type msg struct {
	kind     kind
	from, to int32
	payload  []byte
}

// member is one simulated unicast IPCP.
type member struct {
	idx     int32
	name    string
	addr    uint64
	alive   bool
	nbrs    []int32 // live adjacencies, sorted
	r       *routing.Router
	dir     *layer.Directory
	refresh clock.Timer
	table   routing.Table

	// Received: routing messages and bytes, directory messages, entries
	// and bytes, directory entries applied as fresh.
	rxRouting, rxRoutingBytes       uint64
	rxDir, rxDirEntries, rxDirBytes uint64
	dirFresh                        uint64
	lastChange                      time.Time
}

// New builds the topology and brings the whole layer up at one virtual
// instant: every member enrolls through a neighbour that joined before
// it (breadth first from member 0, which bootstraps the layer),
// registers its names and opens its adjacencies. Run Settle afterwards.
func New(cfg Config) (*Sim, error) {
	if cfg.N < 3 {
		return nil, fmt.Errorf("scalesim: N %d: want at least 3", cfg.N)
	}
	if cfg.Topology == "" {
		cfg.Topology = TopoRandom
	}
	if cfg.Degree == 0 {
		cfg.Degree = 4
	}
	if cfg.Degree < 2 || cfg.Degree >= cfg.N {
		return nil, fmt.Errorf("scalesim: degree %d: want 2 to N-1", cfg.Degree)
	}
	if cfg.Names == 0 {
		cfg.Names = 2
	}
	if cfg.Hop <= 0 {
		cfg.Hop = time.Millisecond
	}
	lc := layer.Defaults("scale")
	if cfg.Layer != nil {
		lc = *cfg.Layer
	}
	if err := lc.Validate(); err != nil {
		return nil, fmt.Errorf("scalesim: %w", err)
	}
	s := &Sim{cfg: cfg, lc: lc, byAddr: map[uint64]int32{},
		rng: rand.New(rand.NewPCG(cfg.Seed, 0x5ca1e))}
	s.start = time.Unix(1_000_000, 0)
	s.clk = clock.NewFake(s.start)
	edges, err := s.topology()
	if err != nil {
		return nil, err
	}
	adj := make([][]int32, cfg.N)
	for _, e := range edges {
		adj[e[0]] = append(adj[e[0]], e[1])
		adj[e[1]] = append(adj[e[1]], e[0])
	}
	s.members = make([]*member, cfg.N)
	for i := range s.members {
		s.members[i] = &member{idx: int32(i), name: fmt.Sprintf("scale-%d", i)}
	}
	// Breadth first from 0: each member enrolls through its parent.
	order, parent := []int32{0}, map[int32]int32{0: -1}
	for k := 0; k < len(order); k++ {
		for _, n := range adj[order[k]] {
			if _, ok := parent[n]; !ok {
				parent[n] = order[k]
				order = append(order, n)
			}
		}
	}
	if len(order) != cfg.N {
		return nil, errors.New("scalesim: topology is not connected")
	}
	joined := make([]bool, cfg.N)
	for _, i := range order {
		m := s.members[i]
		if parent[i] < 0 {
			if err := s.startMember(m, lc.DeriveAddress(m.name, 0), nil); err != nil {
				return nil, err
			}
		} else if _, err := s.Enroll(m, s.members[parent[i]]); err != nil {
			return nil, err
		}
		names := make([]string, cfg.Names)
		for k := range names {
			names[k] = fmt.Sprintf("app-%d-%d", i, k)
		}
		s.floodOwnDir(m, m.dir.SetOwn(names, s.clk.Now()))
		for _, n := range adj[i] {
			if joined[n] {
				s.connect(m, s.members[n])
			}
		}
		joined[i] = true
	}
	return s, nil
}

// topology returns the edges of the configured graph.
func (s *Sim) topology() ([][2]int32, error) {
	n := s.cfg.N
	seen := map[[2]int32]bool{}
	var edges [][2]int32
	add := func(a, b int32) bool {
		if a == b {
			return false
		}
		k := [2]int32{min(a, b), max(a, b)}
		if seen[k] {
			return false
		}
		seen[k] = true
		edges = append(edges, k)
		return true
	}
	switch s.cfg.Topology {
	case TopoRandom:
		for i := range n {
			add(int32(i), int32((i+1)%n))
		}
		want := n * s.cfg.Degree / 2
		for tries := 0; len(edges) < want && tries < 100*want; tries++ {
			add(int32(s.rng.IntN(n)), int32(s.rng.IntN(n)))
		}
	case TopoGrid:
		cols := 1
		for cols*cols < n {
			cols++
		}
		for i := range n {
			if (i+1)%cols != 0 && i+1 < n {
				add(int32(i), int32(i+1))
			}
			if i+cols < n {
				add(int32(i), int32(i+cols))
			}
		}
	default:
		return nil, fmt.Errorf("scalesim: unknown topology %q (want %s or %s)", s.cfg.Topology, TopoRandom, TopoGrid)
	}
	return edges, nil
}

// Enroll enrolls m in the layer through member via, as the unicast
// IPCP's Enroll and serveEnroll do it, and starts m. It returns the
// size of the encoded enrollment response.
func (s *Sim) Enroll(m, via *member) (int, error) {
	req, err := enroll.Encode(enroll.Request{V: enroll.Version, IPCP: m.name, Layer: s.lc.Name})
	if err != nil {
		return 0, err
	}
	var q enroll.Request
	if err := enroll.Decode(req, &q); err != nil {
		return 0, fmt.Errorf("scalesim: enroll request: %w", err)
	}
	resp := enroll.Response{V: enroll.Version, Config: s.lc, Dir: via.dir.Snapshot()}
	seen := map[uint64]bool{}
	for a, name := range via.dir.Members() {
		seen[a] = true
		if name == q.IPCP {
			resp.Addr = a
		}
	}
	for _, mm := range via.r.Members() {
		seen[mm.Addr] = true
	}
	for a := range seen {
		resp.InUse = append(resp.InUse, a)
	}
	b, err := enroll.Encode(resp)
	if err != nil {
		return 0, err
	}
	var got enroll.Response
	if err := enroll.Decode(b, &got); err != nil {
		return 0, fmt.Errorf("scalesim: enroll response: %w", err)
	}
	if err := got.Config.Validate(); err != nil {
		return 0, fmt.Errorf("scalesim: enroll response: %w", err)
	}
	inUse := map[uint64]bool{}
	for _, a := range got.InUse {
		inUse[a] = true
	}
	addr := got.Addr
	if addr == 0 {
		if addr, _, err = got.Config.PickAddress(m.name, inUse); err != nil {
			return 0, err
		}
	}
	return len(b), s.startMember(m, addr, got.Dir)
}

// startMember is the unicast IPCP's start: directory, router, refresh.
func (s *Sim) startMember(m *member, addr uint64, dir []layer.DirEntry) error {
	if _, dup := s.byAddr[addr]; dup {
		return fmt.Errorf("scalesim: address %x of %s is taken (the simulation assumes unique addresses)", addr, m.name)
	}
	m.addr, m.alive = addr, true
	s.byAddr[addr] = m.idx
	m.dir = layer.NewDirectory(addr, m.name)
	now := s.clk.Now()
	for _, e := range dir {
		m.dir.Apply(e, now)
	}
	pol, err := routing.ParsePolicy(s.lc.Routing)
	if err != nil {
		return err
	}
	m.r, err = routing.New(routing.Config{
		Self: addr, Policy: pol, Clock: s.clk, HoldDown: s.lc.HoldDown,
		RefreshInterval: s.lc.RefreshInterval, MaxAge: s.lc.MaxAge,
		Send: func(n uint64, b []byte) {
			s.maxRouting = max(s.maxRouting, len(b))
			if j, ok := s.byAddr[n]; ok {
				s.queue = append(s.queue, msg{kind: kindRouting, from: m.idx, to: j, payload: b})
			}
		},
		OnTable: func(t routing.Table) {
			if !t.Equal(m.table) {
				m.table = t
				m.lastChange = s.clk.Now()
				s.lastChange = m.lastChange
				m.dir.Reach(func(a uint64) bool { _, ok := t[a]; return ok }, m.lastChange)
			}
		},
	})
	if err != nil {
		return fmt.Errorf("scalesim: %s: %w", m.name, err)
	}
	first := time.Second + time.Duration(s.rng.Int64N(int64(s.lc.RefreshInterval)))
	m.refresh = s.clk.AfterFunc(first, func() { s.onRefresh(m) })
	return nil
}

// onRefresh mirrors unicast.go onRefresh.
func (s *Sim) onRefresh(m *member) {
	if !m.alive {
		return
	}
	now := s.clk.Now()
	s.floodOwnDir(m, m.dir.Refresh(now))
	m.dir.Expire(now, s.lc.MaxAge, s.lc.RefreshInterval, func(a uint64) bool { _, ok := m.table[a]; return ok })
	m.refresh.Reset(layer.NextRefresh(s.lc.RefreshInterval, s.rng.Float64()))
}

// connect opens the adjacency a-b, as addAdj does at both ends.
func (s *Sim) connect(a, b *member) {
	a.nbrs = insertSorted(a.nbrs, b.idx)
	b.nbrs = insertSorted(b.nbrs, a.idx)
	for _, p := range [][2]*member{{a, b}, {b, a}} {
		p[0].r.NeighborUp(p[1].addr, 1)
		s.sendDir(p[0], p[1].idx, p[0].dir.Snapshot())
	}
}

func insertSorted(s []int32, x int32) []int32 {
	i, ok := slices.BinarySearch(s, x)
	if ok {
		return s
	}
	return slices.Insert(s, i, x)
}

func removeSorted(s []int32, x int32) []int32 {
	i, ok := slices.BinarySearch(s, x)
	if !ok {
		return s
	}
	return slices.Delete(s, i, i+1)
}

// linked reports whether the adjacency a-b is up.
func (s *Sim) linked(a, b int32) bool {
	_, ok := slices.BinarySearch(s.members[a].nbrs, b)
	return ok
}

// floodOwnDir mirrors adj.go floodOwnDir (without the restart at
// MaxDirSeq).
func (s *Sim) floodOwnDir(m *member, e layer.DirEntry) {
	s.floodDir(m, []layer.DirEntry{e}, -1)
}

// floodDir mirrors adj.go floodDir: the entries to every neighbour but
// except, encoded per neighbour as sendDir does.
func (s *Sim) floodDir(m *member, entries []layer.DirEntry, except int32) {
	for _, n := range m.nbrs {
		if n != except {
			s.sendDir(m, n, entries)
		}
	}
}

func (s *Sim) sendDir(m *member, to int32, entries []layer.DirEntry) {
	b, err := layer.EncodeDir(entries)
	if err != nil {
		return
	}
	s.maxDir = max(s.maxDir, len(b))
	s.queue = append(s.queue, msg{kind: kindDir, from: m.idx, to: to, payload: b})
}

// deliver hands one message to its receiver, as the unicast IPCP's
// receiveMgmt does; messages on links that went down are dropped.
func (s *Sim) deliver(q msg) {
	to := s.members[q.to]
	if !to.alive || !s.members[q.from].alive || !s.linked(q.from, q.to) {
		return
	}
	from := s.members[q.from]
	if q.kind == kindRouting {
		to.rxRouting++
		to.rxRoutingBytes += uint64(len(q.payload))
		if s.attrib != nil {
			if m, err := routing.Decode(q.payload); err == nil {
				for _, l := range m.LSUs {
					if s.attrib[l.Origin] {
						s.attribLSUs++
					}
				}
			}
		}
		if err := to.r.Receive(from.addr, q.payload); err != nil {
			panic(fmt.Sprintf("scalesim: %s from %s: %v", to.name, from.name, err))
		}
		return
	}
	to.rxDir++
	to.rxDirBytes += uint64(len(q.payload))
	entries, err := layer.DecodeDir(q.payload)
	if err != nil {
		panic(fmt.Sprintf("scalesim: %s from %s: %v", to.name, from.name, err))
	}
	to.rxDirEntries += uint64(len(entries))
	var fresh, reply []layer.DirEntry
	now := s.clk.Now()
	for _, e := range entries {
		switch v, send := to.dir.Apply(e, now); v {
		case layer.DirFresh:
			fresh = append(fresh, e)
			to.dirFresh++
		case layer.DirStale:
			reply = append(reply, send)
		case layer.DirOwnNewer, layer.DirOwnFlush:
			s.floodOwnDir(to, send)
		}
	}
	if len(fresh) > 0 {
		s.floodDir(to, fresh, q.from)
	}
	if len(reply) > 0 {
		s.sendDir(to, q.from, reply)
	}
}

// Step runs one round: it delivers every message sent in the previous
// round, then moves the clock by one hop (firing the timers due). It
// returns how many messages it delivered.
func (s *Sim) Step() int {
	batch := s.queue
	s.queue = nil
	for _, q := range batch {
		s.deliver(q)
	}
	s.clk.Advance(s.cfg.Hop)
	return len(batch)
}

// Settle runs rounds until no message has been in flight for two
// hold-downs (every SPF has run), or until limit of virtual time has
// passed; it returns the virtual time it ran and an error on the limit.
func (s *Sim) Settle(limit time.Duration) (time.Duration, error) {
	t0 := s.clk.Now()
	quiet := time.Duration(0)
	for quiet <= 2*s.lc.HoldDown+s.cfg.Hop {
		if s.clk.Now().Sub(t0) > limit {
			return s.clk.Now().Sub(t0), fmt.Errorf("scalesim: not settled after %v", limit)
		}
		if s.Step() > 0 || len(s.queue) > 0 {
			quiet = 0
		} else {
			quiet += s.cfg.Hop
		}
	}
	return s.clk.Now().Sub(t0), nil
}

// Run runs rounds for d of virtual time.
func (s *Sim) Run(d time.Duration) {
	end := s.clk.Now().Add(d)
	for s.clk.Now().Before(end) {
		s.Step()
	}
}

// Now returns the virtual time.
func (s *Sim) Now() time.Time { return s.clk.Now() }

// Members returns the number of members, dead ones included.
func (s *Sim) Members() int { return len(s.members) }

// Links returns the number of live adjacencies.
func (s *Sim) Links() int {
	n := 0
	for _, m := range s.members {
		if m.alive {
			n += len(m.nbrs)
		}
	}
	return n / 2
}

// CutLink takes the adjacency a-b down at both ends, as the keepalive
// does when it declares the link dead.
func (s *Sim) CutLink(a, b int) error {
	ma, mb := s.members[a], s.members[b]
	if !s.linked(ma.idx, mb.idx) {
		return fmt.Errorf("scalesim: no link %d-%d", a, b)
	}
	ma.nbrs = removeSorted(ma.nbrs, mb.idx)
	mb.nbrs = removeSorted(mb.nbrs, ma.idx)
	ma.r.NeighborDown(mb.addr)
	mb.r.NeighborDown(ma.addr)
	return nil
}

// RestoreLink brings the adjacency a-b up again after CutLink, as
// addAdj does at both ends (routing's NeighborUp, and a directory
// snapshot each way).
func (s *Sim) RestoreLink(a, b int) error {
	ma, mb := s.members[a], s.members[b]
	if !ma.alive || !mb.alive || s.linked(ma.idx, mb.idx) {
		return fmt.Errorf("scalesim: cannot restore link %d-%d", a, b)
	}
	s.connect(ma, mb)
	return nil
}

// Kill stops member i: its router and refresh stop, its links go down,
// and its neighbours are told (NeighborDown), as their keepalives would.
func (s *Sim) Kill(i int) {
	m := s.members[i]
	m.alive = false
	m.r.Close()
	m.refresh.Stop()
	for _, n := range m.nbrs {
		nm := s.members[n]
		nm.nbrs = removeSorted(nm.nbrs, m.idx)
		nm.r.NeighborDown(m.addr)
	}
	m.nbrs = nil
}

// Neighbors returns the live neighbours of member i.
func (s *Sim) Neighbors(i int) []int {
	out := make([]int, len(s.members[i].nbrs))
	for k, n := range s.members[i].nbrs {
		out[k] = int(n)
	}
	return out
}

// ConnectedWithout reports whether the live members stay connected
// without member skip (-1: none) and without the link a-b (a = -1: none).
func (s *Sim) ConnectedWithout(skip, a, b int) bool {
	start, total := -1, 0
	for i, m := range s.members {
		if m.alive && i != skip {
			total++
			if start < 0 {
				start = i
			}
		}
	}
	seen := map[int]bool{start: true}
	stack := []int{start}
	for len(stack) > 0 {
		x := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, n32 := range s.members[x].nbrs {
			n := int(n32)
			if n == skip || seen[n] || (x == a && n == b) || (x == b && n == a) {
				continue
			}
			seen[n] = true
			stack = append(stack, n)
		}
	}
	return len(seen) == total
}

// Rand returns the simulation's seeded random source.
func (s *Sim) Rand() *rand.Rand { return s.rng }

// Truth returns the table member i should hold: SPF over the live
// adjacencies (every link costs 1).
func (s *Sim) Truth(i int) routing.Table {
	var lsus []routing.LSU
	for _, m := range s.members {
		if !m.alive {
			continue
		}
		l := routing.LSU{Origin: m.addr, Seq: 1}
		for _, n := range m.nbrs {
			l.Links = append(l.Links, routing.Link{Neighbor: s.members[n].addr, Cost: 1})
		}
		sort.Slice(l.Links, func(x, y int) bool { return l.Links[x].Neighbor < l.Links[y].Neighbor })
		lsus = append(lsus, l)
	}
	pol, _ := routing.ParsePolicy(s.lc.Routing)
	return routing.SPF(routing.NewGraph(lsus), s.members[i].addr, pol)
}

// Inconsistent returns the live members whose table is not the truth
// (at most max of them; max <= 0: all).
func (s *Sim) Inconsistent(max int) []int {
	var lsus []routing.LSU
	for _, m := range s.members {
		if !m.alive {
			continue
		}
		l := routing.LSU{Origin: m.addr, Seq: 1}
		for _, n := range m.nbrs {
			l.Links = append(l.Links, routing.Link{Neighbor: s.members[n].addr, Cost: 1})
		}
		sort.Slice(l.Links, func(x, y int) bool { return l.Links[x].Neighbor < l.Links[y].Neighbor })
		lsus = append(lsus, l)
	}
	g := routing.NewGraph(lsus)
	pol, _ := routing.ParsePolicy(s.lc.Routing)
	var bad []int
	for i, m := range s.members {
		if m.alive && !m.r.Table().Equal(routing.SPF(g, m.addr, pol)) {
			bad = append(bad, i)
			if max > 0 && len(bad) >= max {
				break
			}
		}
	}
	return bad
}

// DirectoryHolds returns how many live members' directories resolve
// name to member i's address.
func (s *Sim) DirectoryHolds(i int, name string) int {
	addr, n := s.members[i].addr, 0
	for _, m := range s.members {
		if m.alive && slices.Contains(m.dir.Lookup(name), addr) {
			n++
		}
	}
	return n
}

// DirectoryInconsistent returns how many live members' directories do
// not hold exactly the live members' entries.
func (s *Sim) DirectoryInconsistent() int {
	live := 0
	for _, m := range s.members {
		if m.alive {
			live++
		}
	}
	bad := 0
	for _, m := range s.members {
		if !m.alive {
			continue
		}
		ms := m.dir.Members()
		ok := len(ms) == live
		for a := range ms {
			if j, known := s.byAddr[a]; !known || !s.members[j].alive {
				ok = false
			}
		}
		if !ok {
			bad++
		}
	}
	return bad
}
