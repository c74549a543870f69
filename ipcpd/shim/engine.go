package shim

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ouro-net/ouro/ipcpd"
	"github.com/ouro-net/ouro/ipcpd/shim/admit"
	"github.com/ouro-net/ouro/ipcpd/shim/dir"
	"github.com/ouro-net/ouro/ipcpd/shim/wire"
	"github.com/ouro-net/ouro/lib/clock"
	"github.com/ouro-net/ouro/lib/namehash"
	"github.com/ouro-net/ouro/lib/qos"
)

// ErrClosed is returned by calls on a closed engine.
var ErrClosed = errors.New("IPCP is shutting down")

// ArriveFunc asks the IRMd for an acceptor of an incoming flow; it is
// (*ipcpd.Host).Arrive in production.
type ArriveFunc func(ctx context.Context, name string, q qos.Spec, mtu int) (*ipcpd.Flow, error)

// Link is what a medium gives the engine: a way to send management
// messages, where queries go, and the data path of a flow. A is the
// medium's address (a MAC, an IP address and port).
type Link[A comparable] interface {
	// SendMgmt sends one encoded management message to dst: msg
	// starts with Config.Headroom bytes for the medium's header, which
	// SendMgmt fills in. It is called from many goroutines at once.
	SendMgmt(dst A, msg []byte) error
	// Run moves the application's packets of fl to its peer until the
	// application ends the flow (a Dealloc record, or its channel
	// closed) or the engine wakes it (fl.Ending). It must not call
	// fl.App.End: the engine does once Run returns.
	Run(fl *Flow[A])
	// Offer is called before this end sends an alloc request, or an
	// "ok" to a request with a non-zero medium field: it returns the
	// medium field to offer (udp: the port of a data socket it opened
	// for fl; 0: none).
	Offer(fl *Flow[A]) uint16
	// Agreed is called once fl is agreed, before its Run, with the
	// peer's medium field (udp: connect and hand over the data
	// socket); a requester's Agreed runs before its Confirm goes out,
	// a responder's before its "ok", which carries what Agreed returns
	// (0: Offer's field is not used after all).
	Agreed(fl *Flow[A], peerField uint16) uint16
	// Release frees what Offer took for a flow that never came up.
	Release(fl *Flow[A])
}

// Config is what an Engine needs.
type Config[A comparable] struct {
	// Kind names the IPCP type in messages ("udp4", "eth-dix", ...).
	Kind string
	// Link is the medium.
	Link Link[A]
	// MTU is the flow MTU this end offers.
	MTU int
	// MaxEID is the largest endpoint id the medium's data header
	// carries (0: 32 bits).
	MaxEID uint32
	// Headroom is how many bytes SendMgmt finds free in front of each
	// message, for the medium's header.
	Headroom int
	// Peers are the configured peers: queries go to each of them and
	// settle when one says yes or all say no; they are reserved
	// sources for the admission and the answer budget.
	Peers []A
	// Broadcasting makes queries go to Broadcast, the address of every
	// station on the medium, and settle on the first yes; the engine
	// then answers only the queries for names it has (every station
	// saying no would be a storm).
	Broadcasting bool
	Broadcast    A
	// Carrier is the link state at start.
	Carrier bool
	// Arrive hands incoming flows to the IRMd.
	Arrive ArriveFunc
	// Log receives the engine's log lines (nil: discard).
	Log hclog.Logger
	// Clock drives every timer (nil: the wall clock).
	Clock clock.Clock
	// Timers override the defaults.
	Timers Timers
	// Less orders addresses for show (nil: by their text).
	Less func(a, b A) bool
}

// Engine runs the shim protocol over one Link: the directory, the
// allocation handshake, endpoint ids, deallocation, the caps and
// answer budgets, and the timers, on an injected clock.
type Engine[A comparable] struct {
	cfg    Config[A]
	t      Timers
	log    hclog.Logger
	clk    clock.Clock
	link   Link[A]
	mtu    int
	maxEID uint32

	// Counters are the engine's statistics.
	Counters Counters

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	work   sync.WaitGroup // flow goroutines, arrivals, the sweeper

	sigMu sync.Mutex // orders Down/Up signals per flow

	// The sweeper's timer runs only while a flow needs it (expire.go):
	// armed and kicked are guarded by sweepMu.
	sweepMu     sync.Mutex
	sweepT      clock.Timer
	sweepArmed  bool
	sweepKicked bool

	mu        sync.RWMutex
	closed    bool
	carrier   bool
	carrierAt time.Time
	names     dir.Names
	cache     *dir.Cache[A]
	queries   map[namehash.Hash]*query[A]
	flows     map[uint32]*Flow[A] // by local eid
	byRemote  map[peerKey[A]]*Flow[A]
	arriving  map[peerKey[A]]bool
	nextEID   uint32
	adm       *admit.Admission[A] // incoming flows per source
	answers   *admit.Answers[A]   // budget of stateless answers
}

// peerKey names a flow end at another station.
type peerKey[A comparable] struct {
	addr A
	eid  uint32
}

// New starts an engine on cfg.Link. The link feeds it management
// messages (Mgmt) and looks up the flows of data frames (Data); Close
// stops it.
func New[A comparable](cfg Config[A]) (*Engine[A], error) {
	if cfg.Link == nil {
		return nil, errors.New("shim: no link")
	}
	if cfg.Arrive == nil {
		return nil, errors.New("shim: no arrive function")
	}
	if cfg.MTU < wire.MinMTU || cfg.MTU > 0xFFFF {
		return nil, fmt.Errorf("%s: flow MTU %d out of range (%d to 65535)", cfg.Kind, cfg.MTU, wire.MinMTU)
	}
	if cfg.Log == nil {
		cfg.Log = hclog.NewNullLogger()
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real()
	}
	if cfg.MaxEID == 0 {
		cfg.MaxEID = 0xFFFFFFFF
	}
	if cfg.Less == nil {
		cfg.Less = func(a, b A) bool { return fmt.Sprint(a) < fmt.Sprint(b) }
	}
	e := &Engine[A]{
		cfg: cfg, t: cfg.Timers.withDefaults(), log: cfg.Log, clk: cfg.Clock, link: cfg.Link,
		mtu: cfg.MTU, maxEID: cfg.MaxEID,
		carrier: cfg.Carrier, carrierAt: cfg.Clock.Now(),
		names: dir.Names{}, queries: make(map[namehash.Hash]*query[A]),
		flows: make(map[uint32]*Flow[A]), byRemote: make(map[peerKey[A]]*Flow[A]), arriving: make(map[peerKey[A]]bool),
	}
	e.cache = dir.NewCache[A](e.t.CacheTTL, 0)
	e.adm = admit.New(e.t.limits(), cfg.Peers)
	e.answers = admit.NewAnswers(e.t.QueryRate, float64(e.t.QueryBurst), cfg.Peers)
	e.ctx, e.cancel = context.WithCancel(context.Background())
	e.sweepT, e.sweepArmed = e.clk.NewTimer(sweepEvery), true
	e.work.Add(1)
	go e.sweep()
	return e, nil
}

// MTU returns the flow MTU this end offers.
func (e *Engine[A]) MTU() int { return e.mtu }

// Clock returns the engine's clock.
func (e *Engine[A]) Clock() clock.Clock { return e.clk }

// Log returns the engine's logger.
func (e *Engine[A]) Log() hclog.Logger { return e.log }

// Mgmt handles one management message b from src. The link's receive
// goroutine calls it; it does not keep b.
func (e *Engine[A]) Mgmt(src A, b []byte) {
	var m wire.Msg
	switch err := m.Decode(b); err {
	case nil:
	case wire.ErrShort:
		e.Counters.Short.Add(1)
		return
	case wire.ErrVersion:
		if n := e.Counters.BadVersion.Add(1); n == 1 || n%1000 == 0 {
			e.log.Warn("management message of another protocol version refused (the peer runs another build)",
				"from", fmt.Sprint(src), "version", wire.VersionOf(b), "want", wire.Version, "refused", n)
		}
		return
	case wire.ErrType:
		e.Counters.BadType.Add(1)
		return
	default:
		e.Counters.Malformed.Add(1)
		return
	}
	if m.Src > e.maxEID || m.Dst > e.maxEID {
		// The medium's data header has no room for such an eid: no
		// flow end on it has one.
		e.Counters.Malformed.Add(1)
		return
	}
	switch m.Type {
	case wire.Query:
		e.onQuery(src, &m)
	case wire.QueryReply:
		e.onQueryReply(src, &m)
	case wire.AllocReq:
		e.onAllocReq(src, &m)
	case wire.AllocResp:
		e.onAllocResp(src, &m)
	case wire.Dealloc:
		e.onDealloc(src, &m)
	case wire.DeallocAck:
		e.onDeallocAck(src, &m)
	case wire.Confirm:
		e.onConfirm(src, &m)
	}
}

// send encodes m and sends it to dst; failures are counted (the link's
// error is not wrapped: it costs no allocation).
func (e *Engine[A]) send(dst A, m *wire.Msg) bool {
	b := make([]byte, e.cfg.Headroom, e.cfg.Headroom+m.Len())
	if err := e.link.SendMgmt(dst, m.Append(b)); err != nil {
		e.Counters.TxErrors.Add(1)
		return false
	}
	return true
}

// Close ends every flow (one dealloc each to its peer), stops the
// arrivals and the sweeper, and waits for every goroutine of the
// engine. The link closes its medium after.
func (e *Engine[A]) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	for _, fl := range e.flows {
		if fl.state.Load() != statePending {
			fl.end(endShutdown)
		}
	}
	e.mu.Unlock()
	e.cancel()
	e.work.Wait()
	return nil
}

// Closed reports whether Close was called.
func (e *Engine[A]) Closed() bool {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.closed
}
