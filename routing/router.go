package routing

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/ouro-net/ouro/lib/clock"
)

// Defaults for the zero values of Config.
const (
	DefaultHoldDown        = 5 * time.Millisecond
	DefaultRefreshInterval = 30 * time.Second
	DefaultMaxAge          = 2 * time.Minute
	DefaultMaxMessage      = 16 << 10
	DefaultFlushWait       = 100 * time.Millisecond
	// DefaultMaxOrigins and DefaultMaxLinks bound the link-state
	// database: members (tombstones included) and links over all of
	// them. An LSU that would pass a bound is refused and counted.
	DefaultMaxOrigins = 1 << 16
	DefaultMaxLinks   = 1 << 20
)

// MaxSeq is the highest sequence number. Sequence numbers never wrap: a
// router that would need a higher one flushes its LSU (sends it MaxAge
// old at MaxSeq, which removes that instance everywhere), waits
// FlushWait and starts again at 1 (RFC 2328 12.1.6, ISO 10589 7.3.16).
const MaxSeq = math.MaxUint64

// ErrClosed is returned by Receive after Close.
var ErrClosed = errors.New("routing: router closed")

// Config configures a Router.
type Config struct {
	// Self is this member's address in the layer (never 0).
	Self uint64
	// Policy selects ecmp (default), link-state or lfa.
	Policy Policy
	// Clock drives every timer; nil means clock.Real().
	Clock clock.Clock
	// HoldDown is how long after the first event of a burst SPF runs
	// (default DefaultHoldDown); later events in the window join that run.
	HoldDown time.Duration
	// RefreshInterval is how often the router re-originates its own LSU
	// (default DefaultRefreshInterval); each period is shortened by a
	// deterministic jitter of up to 1/8 so that members do not flood in
	// lockstep.
	RefreshInterval time.Duration
	// MaxAge is how long an LSU lives without refresh (default the
	// larger of DefaultMaxAge and 4*RefreshInterval); it must exceed
	// RefreshInterval (use at least 3x).
	MaxAge time.Duration
	// FlushWait is how long a router that flushed its LSU at MaxSeq
	// waits before it originates again at sequence number 1 (default
	// DefaultFlushWait): long enough for the flush to reach every
	// member first.
	FlushWait time.Duration
	// MaxOrigins and MaxLinks bound the database (defaults
	// DefaultMaxOrigins, DefaultMaxLinks).
	MaxOrigins, MaxLinks int
	// MaxMessage bounds the size of the messages the router sends
	// (default DefaultMaxMessage): floods and syncs are split into
	// several messages; an LSU larger than this still goes alone.
	MaxMessage int
	// MaxMessageTo, if set, gives the largest message neighbour may be
	// sent now (the room in a frame of the lower flow to it, say); the
	// router then splits at the smaller of it and MaxMessage, per
	// neighbour for a sync, at the smallest of the receivers for a
	// flood. A result of 0 or less means no further bound. It is called
	// with the router's lock held: it must not call into the Router.
	MaxMessageTo func(neighbor uint64) int
	// Send hands msg to neighbour. It is called without internal locks
	// held and may call back into the Router; msg may be shared between
	// calls and must not be modified. nil drops every message.
	Send func(neighbor uint64, msg []byte)
	// OnTable receives the new table after every SPF run, and at once
	// when NeighborDown removes a next hop. It is called without internal
	// locks held; the table is read-only. nil means no callback.
	OnTable func(Table)
}

// Router is the link-state engine of one layer member: it keeps the
// database, originates and floods LSUs, syncs new neighbours, ages out
// dead members and runs SPF after a hold-down. It is safe for concurrent
// use and starts no goroutines of its own (timers run through Clock).
type Router struct {
	cfg Config

	mu       sync.Mutex
	closed   bool
	db       *lsdb
	seq      uint64 // own sequence number
	links    []Link // own live adjacencies, sorted by neighbour
	table    Table
	tableGen uint64
	solver   solver
	rng      uint64
	stats    Stats

	spfTimer     clock.Timer
	spfPending   bool // an SPF run is armed or running
	spfDirty     bool // an event arrived since the last run started
	refreshTimer clock.Timer
	ageTimer     clock.Timer
	ageArmed     bool
	ageAt        time.Time
	flushTimer   clock.Timer
	flushing     bool // own LSU flushed at MaxSeq, restart pending

	out      []outMsg // sends collected under mu, made after unlocking
	tableOut bool     // r.table is to be handed to OnTable after unlocking
}

type outMsg struct {
	to  uint64
	msg []byte
}

// effects are what a locked section leaves to do once unlocked.
type effects struct {
	sends []outMsg
	table Table
	gen   uint64
}

// New returns a Router with an empty adjacency list and its own LSU at
// sequence number 1.
func New(cfg Config) (*Router, error) {
	if cfg.Self == 0 {
		return nil, errors.New("routing: new router: zero address")
	}
	if !cfg.Policy.valid() {
		return nil, fmt.Errorf("routing: new router: invalid policy %d", cfg.Policy)
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real()
	}
	if cfg.HoldDown <= 0 {
		cfg.HoldDown = DefaultHoldDown
	}
	if cfg.RefreshInterval <= 0 {
		cfg.RefreshInterval = DefaultRefreshInterval
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = max(DefaultMaxAge, 4*cfg.RefreshInterval)
	}
	if cfg.MaxAge <= cfg.RefreshInterval {
		return nil, fmt.Errorf("routing: new router: MaxAge %v must exceed RefreshInterval %v",
			cfg.MaxAge, cfg.RefreshInterval)
	}
	if cfg.MaxMessage <= 0 {
		cfg.MaxMessage = DefaultMaxMessage
	}
	if cfg.FlushWait <= 0 {
		cfg.FlushWait = DefaultFlushWait
	}
	if cfg.MaxOrigins <= 0 {
		cfg.MaxOrigins = DefaultMaxOrigins
	}
	if cfg.MaxLinks <= 0 {
		cfg.MaxLinks = DefaultMaxLinks
	}
	r := &Router{
		cfg:   cfg,
		db:    newLSDB(cfg.Self, cfg.MaxAge),
		table: Table{},
		rng:   cfg.Self,
	}
	r.db.maxOrigins, r.db.maxLinks = cfg.MaxOrigins, cfg.MaxLinks
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seq = 1
	r.db.setSelf(LSU{Origin: cfg.Self, Seq: 1}, cfg.Clock.Now())
	r.stats.Originated++
	r.refreshTimer = cfg.Clock.AfterFunc(r.refreshDelayLocked(), r.refresh)
	return r, nil
}

// Close stops every timer; afterwards events are ignored and Receive
// returns ErrClosed. Close is idempotent.
func (r *Router) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	r.closed = true
	for _, t := range []clock.Timer{r.spfTimer, r.refreshTimer, r.ageTimer, r.flushTimer} {
		if t != nil {
			t.Stop()
		}
	}
	r.out = nil
}

// Table returns the current routing table (read-only).
func (r *Router) Table() Table {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.table
}

// Neighbors returns the router's live adjacencies with their costs,
// sorted by neighbour.
func (r *Router) Neighbors() []Link {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.links)
}

// takeLocked collects the pending effects; call before unlocking.
func (r *Router) takeLocked() effects {
	fx := effects{sends: r.out}
	r.out = nil
	if r.tableOut {
		fx.table, fx.gen = r.table, r.tableGen
		r.tableOut = false
	}
	return fx
}

// apply performs effects without holding the lock. A table is handed to
// OnTable only if no newer one was produced in the meantime.
func (r *Router) apply(fx effects) {
	if r.cfg.Send != nil {
		for _, o := range fx.sends {
			r.cfg.Send(o.to, o.msg)
		}
	}
	if fx.table == nil || r.cfg.OnTable == nil {
		return
	}
	r.mu.Lock()
	latest := fx.gen == r.tableGen && !r.closed
	r.mu.Unlock()
	if latest {
		r.cfg.OnTable(fx.table)
	}
}

// unlockApply releases the lock and performs what the locked section left.
func (r *Router) unlockApply() {
	fx := r.takeLocked()
	r.mu.Unlock()
	r.apply(fx)
}
