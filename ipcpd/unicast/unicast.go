// Package unicast is the IPCP kind that makes a recursive layer: it
// gets its lower flows from any layer below through the flow library,
// exactly as an application does, and serves flows to applications and
// to layers above. It assembles layer/ (configuration, addresses,
// directory, flow allocation), enroll/ (joining, hellos), dt/ (header,
// forwarding table) and routing/ (link-state, SPF with ECMP).
//
// Every lower flow of an adjacency carries frames led by one kind byte:
// data-transfer packets (the dt header, then the payload), hellos,
// routing updates, directory updates and enrollment messages. A lower
// flow carries both the dt and the mgmt component unless `connect ...
// component` restricts it: one flow per link keeps one liveness per
// link, which is what failover needs (separate dt and mgmt flows, as
// the Ouroboros prototype has, would double the flows to watch).
//
// Each lower flow is a next hop of its own; two links to one neighbour
// are two next hops. Flow-allocation requests travel as data packets to
// endpoint id 0 of the destination member.
//
// Lower flows are raw and lose packets like their media, so management
// does not trust a single packet: allocation requests are repeated
// until answered (the acceptor answers repeats from a table instead of
// allocating twice), deallocations are sent three times, enrollment and
// adjacency hellos are repeated, and routing and directory frames are
// acknowledged per neighbour and sent again until they are (mgmt.go).
// This is done here, once, for every frame kind that needs it, rather
// than in each management protocol.
package unicast

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ouro-net/ouro/dt"
	"github.com/ouro-net/ouro/enroll"
	"github.com/ouro-net/ouro/flow"
	"github.com/ouro-net/ouro/ipcpd"
	"github.com/ouro-net/ouro/layer"
	"github.com/ouro-net/ouro/lib/clock"
	"github.com/ouro-net/ouro/lib/ctrl"
	"github.com/ouro-net/ouro/lib/seal"
	"github.com/ouro-net/ouro/routing"
)

// Frame kinds on lower flows.
const (
	kindDT      = 0
	kindHello   = 1
	kindRouting = 2
	kindDir     = 3
	kindEnroll  = 4
	// kindAck (5) acknowledges routing and directory frames: see mgmt.go.
)

// defaultMTU is assumed for the layer before any adjacency exists.
const defaultMTU = 1400

// IPCP is a unicast IPCP.
type IPCP struct {
	h   *ipcpd.Host
	log hclog.Logger
	clk clock.Clock

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	live   liveLoop // the keepalive of every adjacency (live.go)
	bal    balancer // load-aware labels of our own flows (balance.go)

	mu        sync.Mutex
	cfg       layer.Config
	layout    dt.Layout
	addr      uint64
	joined    bool
	names     map[string]bool
	listeners map[string]*flow.Listener
	nextAdj   uint64
	adjList   map[uint64]*adj
	pending   map[uint64]chan layer.FAMsg
	accepting map[faKey]*faAccept // recent allocation requests served here
	inFlows   map[uint64]int      // incoming flows per requesting member (see maxAccepting)
	inTotal   int                 // incoming flows of all members
	refresh   clock.Timer
	// rnd draws the jitter of the directory refresh (uniform in [0, 1),
	// under mu; rand.Float64 unless a test injects its own).
	rnd func() float64
	// dirRestart is armed while our directory entry is withdrawn at
	// layer.MaxDirSeq (see floodOwnDir).
	dirRestart clock.Timer

	adjs atomic.Pointer[map[uint64]*adj] // copy-on-write view for the data path
	eps  sync.Map                        // local EID → *endpoint

	arq        *mgmtARQ
	parts      mgmtParts    // management messages in parts (frag.go)
	handshakes atomic.Int64 // incoming lower flows in their opening handshake
	enrollGate enrollGate
	psk        atomic.Pointer[seal.PSK] // the layer secret, nil in an open layer (auth.go)
	refusals   answerLimit              // answers to refused allocation requests
	fib        *dt.FIB
	router     *routing.Router
	dir        *layer.Directory
	stats      stats
}

type stats struct {
	fwd, local, noRoute, ttl, malformed, noEndpoint atomic.Uint64
	failovers, withdrawals, adjUp, adjDown          atomic.Uint64
	faRetries, faDuplicates, faDropped              atomic.Uint64
	addrConflicts, faRefused                        atomic.Uint64
	handshakesRefused, enrollRefused                atomic.Uint64
	authRefused                                     atomic.Uint64 // unauthenticated joiners refused in a secret layer (auth.go)
	bends, badLabel                                 atomic.Uint64 // path bending: label changes stamped, packets and records with a label out of range
	lastFailover                                    atomic.Int64
}

// New is the unicast kind's constructor.
func New(h *ipcpd.Host) (ipcpd.IPCP, error) {
	ctx, cancel := context.WithCancel(context.Background())
	clk := clock.Real()
	u := &IPCP{h: h, log: h.Log, clk: clk, rnd: rand.Float64, ctx: ctx, cancel: cancel, arq: newMgmtARQ(clk),
		names: map[string]bool{}, listeners: map[string]*flow.Listener{},
		adjList: map[uint64]*adj{}, pending: map[uint64]chan layer.FAMsg{},
		accepting: map[faKey]*faAccept{}, inFlows: map[uint64]int{}}
	empty := map[uint64]*adj{}
	u.adjs.Store(&empty)
	return u, nil
}

// Bootstrap creates the layer with this IPCP as its first member.
func (u *IPCP) Bootstrap(_ context.Context, name string, params map[string]string) (ctrl.IPCPBootstrapReply, error) {
	cfg, explicit, err := layer.FromParams(name, params)
	if err != nil {
		return ctrl.IPCPBootstrapReply{}, err
	}
	var psk *seal.PSK
	if cfg.Secret {
		if psk, err = seal.LoadPSK(params[SecretParam], nil); err != nil {
			return ctrl.IPCPBootstrapReply{}, err
		}
	}
	addr := explicit
	if addr == 0 {
		addr = cfg.DeriveAddress(u.h.Name, 0)
	}
	if err := u.start(cfg, addr, nil, psk); err != nil {
		return ctrl.IPCPBootstrapReply{}, err
	}
	return ctrl.IPCPBootstrapReply{Address: cfg.FormatAddr(addr), MTU: u.mtu()}, nil
}

// Enroll joins an existing layer through a member reached by dst (the
// layer's name when dst is empty).
func (u *IPCP) Enroll(ctx context.Context, name, dst string) (ctrl.IPCPBootstrapReply, error) {
	return u.enroll(ctx, name, dst, nil)
}

// enroll is Enroll, proving the layer secret psk when not nil.
func (u *IPCP) enroll(ctx context.Context, name, dst string, psk *seal.PSK) (ctrl.IPCPBootstrapReply, error) {
	if dst == "" {
		dst = name
	}
	actx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	opts := []flow.Option{flow.WithDialer(u.h.Dial)}
	if psk != nil {
		opts = append(opts, flow.WithPSK(psk))
	}
	f, err := flow.Alloc(actx, dst, flow.QoS{Name: "raw"}, opts...)
	if err != nil {
		if e := authErr(name, dst, err); e != nil {
			return ctrl.IPCPBootstrapReply{}, e
		}
		return ctrl.IPCPBootstrapReply{}, fmt.Errorf("enroll in %s: reach %s: %w", name, dst, err)
	}
	defer f.Close()
	var resp enroll.Response
	if err := enroll.Exchange(actx, f, kindEnroll, enroll.Request{V: enroll.Version, IPCP: u.h.Name, Layer: name}, &resp); err != nil {
		return ctrl.IPCPBootstrapReply{}, fmt.Errorf("enroll in %s via %s: %w", name, dst, err)
	}
	if resp.Err == authRefusal {
		return ctrl.IPCPBootstrapReply{}, fmt.Errorf("enroll in %s via %s: enrollment refused: %s (the layer admits only holders of its secret: enroll with secret FILE)", name, dst, resp.Err)
	}
	if resp.Err != "" {
		return ctrl.IPCPBootstrapReply{}, fmt.Errorf("enroll in %s via %s: refused: %s", name, dst, resp.Err)
	}
	cfg := resp.Config
	if err := cfg.Validate(); err != nil {
		return ctrl.IPCPBootstrapReply{}, fmt.Errorf("enroll in %s: member sent a bad configuration: %w", name, err)
	}
	if cfg.Name != name {
		return ctrl.IPCPBootstrapReply{}, fmt.Errorf("enroll: %s is a member of layer %s, not %s", dst, cfg.Name, name)
	}
	inUse := map[uint64]bool{}
	for _, a := range resp.InUse {
		inUse[a] = true
	}
	addr := resp.Addr
	if addr == 0 {
		addr, _, err = cfg.PickAddress(u.h.Name, inUse)
		if err != nil {
			return ctrl.IPCPBootstrapReply{}, err
		}
	}
	if cfg.Secret != (psk != nil) {
		return ctrl.IPCPBootstrapReply{}, fmt.Errorf("enroll in %s: the member's layer secret flag (%v) does not match ours", name, cfg.Secret)
	}
	if err := u.start(cfg, addr, resp.Dir, psk); err != nil {
		return ctrl.IPCPBootstrapReply{}, err
	}
	u.log.Info("enrolled", "layer", name, "via", dst, "address", cfg.FormatAddr(addr), "members", len(resp.Dir))
	return ctrl.IPCPBootstrapReply{Address: cfg.FormatAddr(addr), MTU: u.mtu()}, nil
}

// start brings up the components once the configuration and address
// are known.
func (u *IPCP) start(cfg layer.Config, addr uint64, dir []layer.DirEntry, psk *seal.PSK) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.joined {
		return fmt.Errorf("IPCP %s is already in layer %s", u.h.Name, u.cfg.Name)
	}
	pol, err := routing.ParsePolicy(cfg.Routing)
	if err != nil {
		return err
	}
	u.cfg = cfg
	u.layout = dt.Layout{AddrSize: cfg.AddrSize, EIDSize: cfg.EIDSize}
	u.addr = addr
	u.fib = dt.NewFIB(rand.Uint64())
	u.dir = layer.NewDirectory(addr, u.h.Name)
	now := u.clk.Now()
	for _, e := range dir {
		u.dir.Apply(e, now)
	}
	r, err := routing.New(routing.Config{
		Self: addr, Policy: pol, Clock: u.clk, HoldDown: cfg.HoldDown,
		RefreshInterval: cfg.RefreshInterval, MaxAge: cfg.MaxAge,
		// Flap damping is applied per lower flow by keepalive (holdTime),
		// the only implementation: the router has none.
		Send: u.sendRouting, OnTable: u.onTable,
		// Split floods and syncs to fit the lower flows' frames (frag.go).
		MaxMessageTo: u.mgmtRoom,
	})
	if err != nil {
		return fmt.Errorf("routing: %w", err)
	}
	u.router = r
	u.psk.Store(psk)
	u.joined = true
	u.refresh = u.clk.AfterFunc(layer.NextRefresh(cfg.RefreshInterval, u.rnd()), u.onRefresh)
	return nil
}

// onRefresh re-floods our directory entry and ages out others: those
// not refreshed within MaxAge, and those of members routing has not
// reached for a refresh interval (the grace of layer.Directory.Expire).
// The next refresh comes after the interval less a random share of up
// to a quarter of it (layer.NextRefresh).
func (u *IPCP) onRefresh() {
	if u.ctx.Err() != nil {
		return
	}
	now := u.clk.Now()
	u.floodOwnDir(u.dir.Refresh(now))
	table := u.router.Table()
	if n := u.dir.Expire(now, u.cfg.MaxAge, u.cfg.RefreshInterval, func(a uint64) bool { _, ok := table[a]; return ok }); n > 0 {
		u.log.Debug("directory entries aged out", "count", n)
	}
	u.mu.Lock()
	u.refresh.Reset(layer.NextRefresh(u.cfg.RefreshInterval, u.rnd()))
	u.mu.Unlock()
}

func (u *IPCP) isJoined() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.joined
}

// Register makes name reachable in the layer through this member.
func (u *IPCP) Register(_ context.Context, name string) error {
	if !u.isJoined() {
		return errors.New("IPCP is not in a layer yet")
	}
	u.mu.Lock()
	u.names[name] = true
	list := u.nameList()
	u.mu.Unlock()
	u.floodOwnDir(u.dir.SetOwn(list, u.clk.Now()))
	return nil
}

// Unregister withdraws name from the layer.
func (u *IPCP) Unregister(_ context.Context, name string) error {
	u.mu.Lock()
	if !u.names[name] {
		u.mu.Unlock()
		return fmt.Errorf("name %q is not registered at %s", name, u.h.Name)
	}
	delete(u.names, name)
	list := u.nameList()
	u.mu.Unlock()
	u.floodOwnDir(u.dir.SetOwn(list, u.clk.Now()))
	return nil
}

func (u *IPCP) nameList() []string {
	out := make([]string, 0, len(u.names))
	for n := range u.names {
		out = append(out, n)
	}
	return out
}

// Query reports whether the directory knows name.
func (u *IPCP) Query(_ context.Context, name string) (bool, error) {
	if !u.isJoined() {
		return false, nil
	}
	return len(u.dir.Lookup(name)) > 0, nil
}

// Bind listens for lower flows to name (enrollment and adjacencies).
func (u *IPCP) Bind(_ context.Context, name string) error {
	u.mu.Lock()
	if _, ok := u.listeners[name]; ok {
		u.mu.Unlock()
		return nil
	}
	u.mu.Unlock()
	l, err := flow.Listen(name, flow.WithDialer(u.h.Dial), flow.WithForwarding(), flow.WithPSKFrom(u.layerPSK))
	if err != nil {
		return fmt.Errorf("bind %s: %w", name, err)
	}
	u.mu.Lock()
	u.listeners[name] = l
	u.mu.Unlock()
	u.wg.Add(1)
	go u.acceptLoop(l)
	return nil
}

// Unbind stops listening for name.
func (u *IPCP) Unbind(_ context.Context, name string) error {
	u.mu.Lock()
	l, ok := u.listeners[name]
	delete(u.listeners, name)
	u.mu.Unlock()
	if !ok {
		return fmt.Errorf("IPCP %s is not bound to %s", u.h.Name, name)
	}
	return l.Close()
}

// acceptLoop serves the lower flows allocated to a bound name, at most
// maxHandshakes at a time: beyond that a new flow is closed at once and
// counted, so a flood of lower-flow requests costs no goroutine or
// buffer each.
func (u *IPCP) acceptLoop(l *flow.Listener) {
	defer u.wg.Done()
	for {
		f, err := l.Accept(u.ctx)
		if err != nil {
			return
		}
		if u.handshakes.Add(1) > maxHandshakes {
			u.handshakes.Add(-1)
			u.stats.handshakesRefused.Add(1)
			f.Close()
			continue
		}
		var once sync.Once
		release := func() { once.Do(func() { u.handshakes.Add(-1) }) }
		u.wg.Add(1)
		go u.serveIncoming(f, release)
	}
}

// Close tears everything down.
func (u *IPCP) Close() error {
	u.cancel()
	u.mu.Lock()
	ls := u.listeners
	u.listeners = map[string]*flow.Listener{}
	adjs := make([]*adj, 0, len(u.adjList))
	for _, a := range u.adjList {
		adjs = append(adjs, a)
	}
	if u.refresh != nil {
		u.refresh.Stop()
	}
	if u.dirRestart != nil {
		u.dirRestart.Stop()
	}
	r := u.router
	u.mu.Unlock()
	u.arq.mu.Lock()
	if u.arq.timer != nil {
		u.arq.timer.Stop()
	}
	u.arq.mu.Unlock()
	for _, l := range ls {
		l.Close()
	}
	for _, a := range adjs {
		a.f.Close()
	}
	u.eps.Range(func(_, v any) bool {
		v.(*endpoint).f.End(false)
		return true
	})
	u.wg.Wait()
	if r != nil {
		r.Close()
	}
	return nil
}

// mtu is the largest N+1 packet the layer carries now.
func (u *IPCP) mtu() int {
	m := 0
	for _, a := range *u.adjs.Load() {
		if am := a.f.MTU(); am > 0 && (m == 0 || am < m) {
			m = am
		}
	}
	if m == 0 {
		m = defaultMTU
	}
	return m - 1 - u.layout.Len()
}
