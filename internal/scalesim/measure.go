package scalesim

import (
	"fmt"
	"math"
	"runtime"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ouro-net/ouro/layer"
	"github.com/ouro-net/ouro/routing"
)

// Counters are totals over every member of the simulation.
type Counters struct {
	// RoutingMsgs and RoutingBytes are routing messages received.
	RoutingMsgs, RoutingBytes uint64
	// LSUs are the LSUs in them (routing.Stats.LSUsReceived).
	LSUs uint64
	// DirMsgs, DirEntries and DirBytes are directory messages
	// received, the entries in them, and their bytes.
	DirMsgs, DirEntries, DirBytes uint64
	// DirFresh counts entries applied as newer than the copy held.
	DirFresh uint64
	// SPFRuns counts SPF runs of every router.
	SPFRuns uint64
}

// Totals sums the counters of every member.
func (s *Sim) Totals() Counters {
	var c Counters
	for _, m := range s.members {
		st := m.r.Stats()
		c.RoutingMsgs += m.rxRouting
		c.RoutingBytes += m.rxRoutingBytes
		c.LSUs += st.LSUsReceived
		c.DirMsgs += m.rxDir
		c.DirEntries += m.rxDirEntries
		c.DirBytes += m.rxDirBytes
		c.DirFresh += m.dirFresh
		c.SPFRuns += st.SPFRuns
	}
	return c
}

func (c Counters) sub(o Counters) Counters {
	return Counters{
		RoutingMsgs: c.RoutingMsgs - o.RoutingMsgs, RoutingBytes: c.RoutingBytes - o.RoutingBytes,
		LSUs: c.LSUs - o.LSUs, DirMsgs: c.DirMsgs - o.DirMsgs, DirEntries: c.DirEntries - o.DirEntries,
		DirBytes: c.DirBytes - o.DirBytes, DirFresh: c.DirFresh - o.DirFresh, SPFRuns: c.SPFRuns - o.SPFRuns,
	}
}

// AddMember enrolls a new member through member via and opens
// adjacencies to via and the others in links; it returns the new
// member's index and the size of its enrollment response.
func (s *Sim) AddMember(via int, links []int) (int, int, error) {
	m := &member{idx: int32(len(s.members)), name: fmt.Sprintf("scale-%d", len(s.members))}
	s.members = append(s.members, m)
	size, err := s.Enroll(m, s.members[via])
	if err != nil {
		return 0, 0, err
	}
	names := make([]string, s.cfg.Names)
	for k := range names {
		names[k] = fmt.Sprintf("app-%d-%d", m.idx, k)
	}
	s.floodOwnDir(m, m.dir.SetOwn(names, s.clk.Now()))
	for _, l := range append([]int{via}, links...) {
		if !s.linked(m.idx, int32(l)) {
			s.connect(m, s.members[l])
		}
	}
	return int(m.idx), size, nil
}

// Event is what one failure (or join) cost the layer.
type Event struct {
	// ConvergedMS is the virtual time from the event until the last
	// routing table changed.
	ConvergedMS float64 `json:"converged_ms"`
	// SPFRuns counts SPF runs over all members, SPFPerMember their mean.
	SPFRuns      uint64  `json:"spf_runs"`
	SPFPerMember float64 `json:"spf_per_member"`
	// LSUsPerMember is the mean number of LSUs about the event (from the
	// members whose adjacencies changed) each member received.
	LSUsPerMember float64 `json:"lsus_per_member"`
	// DirPerMember is the mean number of directory entries received.
	DirPerMember float64 `json:"dir_entries_per_member"`
	// Inconsistent counts members whose table was not the truth after.
	Inconsistent int `json:"inconsistent"`
}

// Rates are per member per second.
type Rates struct {
	// LSUs and LSUsMax are the mean and the highest LSUs received.
	LSUs    float64 `json:"lsus"`
	LSUsMax float64 `json:"lsus_max"`
	// RoutingMsgs are routing messages received (frames, each
	// acknowledged by the real IPCP).
	RoutingMsgs float64 `json:"routing_msgs"`
	// DirEntries and DirMsgs are directory entries and messages received.
	DirEntries float64 `json:"dir_entries"`
	DirMsgs    float64 `json:"dir_msgs"`
	// DirFresh are entries that replaced an older copy (the churn).
	DirFresh float64 `json:"dir_fresh"`
	// Bytes are routing and directory bytes received.
	Bytes float64 `json:"bytes"`
	// Frames is routing plus directory messages.
	Frames float64 `json:"frames"`
}

// Result is one measured layer.
type Result struct {
	N        int     `json:"n"`
	Topology string  `json:"topology"`
	Links    int     `json:"links"`
	Degree   float64 `json:"mean_degree"`
	HopMS    float64 `json:"hop_ms"`
	// BringUpMS is the virtual time from every member starting at once
	// to a quiet layer; BringUpFramesPerMember the frames each received.
	BringUpMS              float64 `json:"bringup_ms"`
	BringUpFramesPerMember float64 `json:"bringup_frames_per_member"`
	// Idle is over one refresh interval of a quiet layer.
	Idle Rates `json:"idle"`
	// LinkFail and MemberFail are one link and one member failing
	// (neither disconnects the layer); Join is one member joining.
	LinkFail   Event `json:"link_fail"`
	MemberFail Event `json:"member_fail"`
	Join       Event `json:"join"`
	// DirCleanupS is how long after the member failure its names still
	// resolved somewhere (each member drops the entry at its first
	// directory refresh after the grace of one refresh interval from
	// the loss; polled every second).
	DirCleanupS float64 `json:"dir_cleanup_s"`
	// DirEntries, DirBytes: one member's directory and its encoded
	// snapshot (what a new neighbour is sent); EnrollBytes: the
	// enrollment response a joining member gets.
	DirEntries  int `json:"dir_entries"`
	DirBytes    int `json:"dir_bytes"`
	EnrollBytes int `json:"enroll_bytes"`
	// FrameUS is the CPU time (user and system, of the whole process,
	// garbage collection included) per routing or directory frame
	// delivered at idle: what the real code costs per frame received
	// (decode, install, flood encode), plus the simulation's overhead,
	// without the I/O of a real lower flow.
	FrameUS float64 `json:"frame_cpu_us"`
	// SPFUS is the wall time of one SPF over the whole layer.
	SPFUS float64 `json:"spf_us"`
	// MaxRoutingMsg and MaxDirMsg are the largest routing and directory
	// messages sent (the database sync and the directory snapshot to
	// the joining member's neighbours are the largest): each is one
	// frame on a lower flow, which refuses frames above its MTU.
	MaxRoutingMsg int `json:"max_routing_msg"`
	MaxDirMsg     int `json:"max_dir_msg"`
	// StateKiBPerMember is the live heap of the whole simulation after
	// the bring-up divided by N: about what one member holds for its
	// layer (database, directory, table, timers), with the simulation's
	// own small share.
	StateKiBPerMember float64 `json:"state_kib_per_member"`
	// WallS is the wall time of the whole measurement.
	WallS float64 `json:"wall_s"`
}

// Measure brings a layer up and measures it: a link failure, a member
// failure, one refresh interval of idle (during which the directory
// forgets the dead member), and a member joining.
func Measure(cfg Config) (*Result, error) {
	w0 := time.Now()
	s, err := New(cfg)
	if err != nil {
		return nil, err
	}
	lim := time.Minute
	res := &Result{N: cfg.N, Topology: s.cfg.Topology, HopMS: ms(s.cfg.Hop)}
	res.Links = s.Links()
	res.Degree = 2 * float64(res.Links) / float64(cfg.N)
	t0, c0 := s.Now(), s.Totals()
	if _, err := s.Settle(lim); err != nil {
		return nil, fmt.Errorf("bring-up: %w", err)
	}
	res.BringUpMS = ms(s.lastChange.Sub(t0))
	c := s.Totals().sub(c0)
	res.BringUpFramesPerMember = float64(c.RoutingMsgs+c.DirMsgs) / float64(cfg.N)
	if bad := s.Inconsistent(1); len(bad) > 0 {
		return nil, fmt.Errorf("bring-up: member %d's table is not the shortest paths", bad[0])
	}
	if bad := s.DirectoryInconsistent(); bad > 0 {
		return nil, fmt.Errorf("bring-up: %d members' directories are incomplete", bad)
	}
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	res.StateKiBPerMember = float64(ms.HeapAlloc) / 1024 / float64(cfg.N)
	snap := s.members[0].dir.Snapshot()
	res.DirEntries = len(snap)
	if b, err := layer.EncodeDir(snap); err == nil {
		res.DirBytes = len(b)
	}
	res.SPFUS = s.timeSPF()
	if d := s.start.Add(time.Second).Sub(s.Now()); d > 0 {
		s.Run(d) // the first directory refreshes come 1 s after the bring-up
	}

	// A link whose loss keeps the layer connected.
	a, b := -1, -1
	for tries := 0; tries < 1000; tries++ {
		x := s.rng.IntN(len(s.members))
		nb := s.members[x].nbrs
		if len(nb) == 0 {
			continue
		}
		y := int(nb[s.rng.IntN(len(nb))])
		if s.ConnectedWithout(-1, x, y) {
			a, b = x, y
			break
		}
	}
	if a < 0 {
		return nil, fmt.Errorf("no link whose loss keeps the layer connected")
	}
	res.LinkFail, err = s.event(func() error { return s.CutLink(a, b) }, []int{a, b})
	if err != nil {
		return nil, fmt.Errorf("link failure: %w", err)
	}

	// A member whose loss keeps the layer connected.
	dead := -1
	for tries := 0; tries < 1000; tries++ {
		x := s.rng.IntN(len(s.members))
		if x != 0 && s.ConnectedWithout(x, -1, -1) {
			dead = x
			break
		}
	}
	if dead < 0 {
		return nil, fmt.Errorf("no member whose loss keeps the layer connected")
	}
	tf := s.Now()
	res.MemberFail, err = s.event(func() error { s.Kill(dead); return nil }, s.Neighbors(dead))
	if err != nil {
		return nil, fmt.Errorf("member failure: %w", err)
	}

	// Idle: one refresh interval (every member refreshes its directory
	// entry once or twice in it, and its LSU once or twice). Then the
	// dead member's names: each member drops its entry at its first
	// refresh after a grace of one refresh interval from the loss
	// (layer.Directory.Expire), so within two intervals.
	var ru0 unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru0)
	c0, t0 = s.Totals(), s.Now()
	before := s.perMemberLSUs()
	name := fmt.Sprintf("app-%d-0", dead)
	holders := s.holders(dead, name, nil)
	poll := func() {
		s.Run(time.Second)
		if len(holders) > 0 {
			if holders = s.holders(dead, name, holders); len(holders) == 0 {
				res.DirCleanupS = s.Now().Sub(tf).Seconds()
			}
		}
	}
	for s.Now().Sub(t0) < s.lc.RefreshInterval {
		poll()
	}
	c = s.Totals().sub(c0)
	res.Idle = s.rates(c, s.Now().Sub(t0), before)
	var ru1 unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru1)
	if f := c.RoutingMsgs + c.DirMsgs; f > 0 {
		cpu := time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
		res.FrameUS = float64(cpu.Microseconds()) / float64(f)
	}
	for len(holders) > 0 && s.Now().Sub(tf) < 2*s.lc.RefreshInterval+2*time.Second {
		poll()
	}
	if len(holders) > 0 {
		return nil, fmt.Errorf("member failure: %d members still resolve its names after %v", len(holders), s.Now().Sub(tf))
	}
	if bad := s.DirectoryInconsistent(); bad > 0 {
		return nil, fmt.Errorf("after the dead member's names went: %d members' directories are not the live members", bad)
	}

	// A member joins through a random member, linked to it and one more.
	via := 0
	for via == 0 || via == dead {
		via = s.rng.IntN(len(s.members))
	}
	other := via
	for other == via || other == dead {
		other = s.rng.IntN(len(s.members))
	}
	var joined int
	res.Join, err = s.event(func() error {
		var err error
		joined, res.EnrollBytes, err = s.AddMember(via, []int{other})
		return err
	}, nil)
	if err != nil {
		return nil, fmt.Errorf("join: %w", err)
	}
	if len(s.members[joined].r.Table()) != cfg.N-1 {
		return nil, fmt.Errorf("join: the new member reaches %d members, want %d",
			len(s.members[joined].r.Table()), cfg.N-1)
	}
	res.MaxRoutingMsg, res.MaxDirMsg = s.maxRouting, s.maxDir
	res.WallS = time.Since(w0).Seconds()
	return res, nil
}

// event runs f (a failure or a join) and measures the layer until it
// is quiet again; LSUs are counted when their origin is in origins
// (nil: every LSU).
func (s *Sim) event(f func() error, origins []int) (Event, error) {
	s.attrib = map[uint64]bool{}
	for _, o := range origins {
		s.attrib[s.members[o].addr] = true
	}
	s.attribLSUs = 0
	t0, c0 := s.Now(), s.Totals()
	s.lastChange = time.Time{}
	if err := f(); err != nil {
		return Event{}, err
	}
	if _, err := s.Settle(time.Minute); err != nil {
		return Event{}, err
	}
	c := s.Totals().sub(c0)
	live := 0
	for _, m := range s.members {
		if m.alive {
			live++
		}
	}
	e := Event{SPFRuns: c.SPFRuns, SPFPerMember: float64(c.SPFRuns) / float64(live),
		DirPerMember: float64(c.DirEntries) / float64(live)}
	if origins == nil {
		e.LSUsPerMember = float64(c.LSUs) / float64(live)
	} else {
		e.LSUsPerMember = float64(s.attribLSUs) / float64(live)
	}
	if !s.lastChange.IsZero() {
		e.ConvergedMS = ms(s.lastChange.Sub(t0))
	}
	e.Inconsistent = len(s.Inconsistent(0))
	s.attrib = nil
	if e.Inconsistent > 0 {
		return e, fmt.Errorf("%d members' tables are not the shortest paths", e.Inconsistent)
	}
	return e, nil
}

func (s *Sim) perMemberLSUs() []uint64 {
	out := make([]uint64, len(s.members))
	for i, m := range s.members {
		out[i] = m.r.Stats().LSUsReceived
	}
	return out
}

func (s *Sim) rates(c Counters, d time.Duration, before []uint64) Rates {
	live := 0
	maxLSUs := uint64(0)
	for i, m := range s.members {
		if m.alive {
			live++
			if i < len(before) {
				maxLSUs = max(maxLSUs, m.r.Stats().LSUsReceived-before[i])
			}
		}
	}
	per := func(x uint64) float64 { return float64(x) / float64(live) / d.Seconds() }
	return Rates{LSUs: per(c.LSUs), LSUsMax: float64(maxLSUs) / d.Seconds(), RoutingMsgs: per(c.RoutingMsgs),
		DirEntries: per(c.DirEntries), DirMsgs: per(c.DirMsgs), DirFresh: per(c.DirFresh),
		Bytes: per(c.RoutingBytes + c.DirBytes), Frames: per(c.RoutingMsgs + c.DirMsgs)}
}

// timeSPF returns the wall time of one SPF of member 0's database, in
// microseconds (the best of a few runs: the machine is shared).
func (s *Sim) timeSPF() float64 {
	var lsus []routing.LSU
	for _, m := range s.members[0].r.Members() {
		lsus = append(lsus, routing.LSU{Origin: m.Addr, Seq: m.Seq, Links: m.Links})
	}
	pol, _ := routing.ParsePolicy(s.lc.Routing)
	best := time.Duration(math.MaxInt64)
	for range 5 {
		t0 := time.Now()
		routing.SPF(routing.NewGraph(lsus), s.members[0].addr, pol)
		best = min(best, time.Since(t0))
	}
	return float64(best.Nanoseconds()) / 1000
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// holders returns the live members (of among, nil: all) whose
// directory resolves name to member i's address.
func (s *Sim) holders(i int, name string, among []int) []int {
	if among == nil {
		for j, m := range s.members {
			if m.alive {
				among = append(among, j)
			}
		}
	}
	addr := s.members[i].addr
	var out []int
	for _, j := range among {
		if slices.Contains(s.members[j].dir.Lookup(name), addr) {
			out = append(out, j)
		}
	}
	return out
}
