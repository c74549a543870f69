package shim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"

	"github.com/ouro-net/ouro/ipcpd"
	"github.com/ouro-net/ouro/ipcpd/eth/frame"
	"github.com/ouro-net/ouro/ipcpd/shim/admit"
	"github.com/ouro-net/ouro/ipcpd/shim/dir"
	"github.com/ouro-net/ouro/ipcpd/shim/wire"
	"github.com/ouro-net/ouro/lib/clock"
	"github.com/ouro-net/ouro/lib/namehash"
	"github.com/ouro-net/ouro/lib/qos"
)

// ArriveFunc asks the IRMd for an acceptor of an incoming flow; it is
// (*ipcpd.Host).Arrive in production.
type ArriveFunc func(ctx context.Context, name string, q qos.Spec, mtu int) (*ipcpd.Flow, error)

// Config is what an Engine needs.
type Config struct {
	// Kind names the IPCP type in messages ("eth-dix", "tap").
	Kind string
	// Dev is the opened device; the engine owns its Medium.
	Dev Device
	// EtherType is the EtherType of every frame sent and accepted.
	EtherType uint16
	// Arrive hands incoming flows to the IRMd.
	Arrive ArriveFunc
	// Log receives the engine's log lines (nil: discard).
	Log hclog.Logger
	// Clock drives every timer (nil: the wall clock).
	Clock clock.Clock
	// Timers override the defaults.
	Timers Timers
}

// maxEID is the largest endpoint id on this medium: the frame header
// has 16 bits for it.
const maxEID = 0xFFFF

// Engine runs the shim protocol on one device.
type Engine struct {
	cfg   Config
	t     Timers
	log   hclog.Logger
	clk   clock.Clock
	mac   frame.MAC
	etype uint16
	mtu   int
	med   Medium

	// Counters are the engine's statistics.
	Counters Counters

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	sigMu sync.Mutex // orders Down/Up signals per flow

	mu        sync.RWMutex
	closed    bool
	carrier   bool
	carrierAt time.Time
	names     dir.Names
	cache     *dir.Cache[frame.MAC]
	queries   map[namehash.Hash]*query
	flows     map[uint16]*flowRec // by local eid, in every state
	incoming  map[peerKey]uint16  // (peer, peer eid) -> local eid
	nextEID   uint16
	adm       *admit.Admission[frame.MAC] // incoming flows per source
	answers   *admit.Answers[frame.MAC]   // budget of stateless answers
}

// New starts an engine on cfg.Dev: it takes over the medium and starts
// reading. Close stops it.
func New(cfg Config) (*Engine, error) {
	if cfg.Dev.Medium == nil {
		return nil, errors.New("shim: no medium")
	}
	if cfg.Arrive == nil {
		return nil, errors.New("shim: no arrive function")
	}
	mtu := cfg.Dev.MTU - frame.Overhead
	if mtu <= 0 {
		return nil, fmt.Errorf("%s: device %s has MTU %d, too small for the %d-byte shim header",
			cfg.Kind, cfg.Dev.Name, cfg.Dev.MTU, frame.Overhead)
	}
	mtu = min(mtu, frame.MaxPayload)
	if mtu < wire.MinMTU {
		return nil, fmt.Errorf("%s: device %s has MTU %d, too small for a flow MTU of %d bytes",
			cfg.Kind, cfg.Dev.Name, cfg.Dev.MTU, wire.MinMTU)
	}
	if cfg.Log == nil {
		cfg.Log = hclog.NewNullLogger()
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real()
	}
	e := &Engine{
		cfg: cfg, t: cfg.Timers.withDefaults(), log: cfg.Log, clk: cfg.Clock,
		mac: cfg.Dev.MAC, etype: cfg.EtherType, mtu: mtu, med: cfg.Dev.Medium,
		carrier: cfg.Dev.Carrier, carrierAt: cfg.Clock.Now(),
		names:   dir.Names{},
		queries: make(map[namehash.Hash]*query), flows: make(map[uint16]*flowRec),
		incoming: make(map[peerKey]uint16),
	}
	e.cache = dir.NewCache[frame.MAC](e.t.CacheTTL, 0)
	e.adm = admit.New[frame.MAC](e.t.limits(), nil)
	e.answers = admit.NewAnswers[frame.MAC](e.t.QueryRate, float64(e.t.QueryBurst), nil)
	e.ctx, e.cancel = context.WithCancel(context.Background())
	e.wg.Add(2)
	go e.readLoop()
	go e.sweep()
	return e, nil
}

// MTU returns the flow MTU: the device MTU minus the shim header.
func (e *Engine) MTU() int { return e.mtu }

// MAC returns the station's address.
func (e *Engine) MAC() frame.MAC { return e.mac }

// readLoop reads frames until the medium is closed.
func (e *Engine) readLoop() {
	defer e.wg.Done()
	buf := make([]byte, 1<<16)
	failures := 0
	for {
		n, err := e.med.ReadFrame(buf)
		if err != nil {
			if e.ctx.Err() != nil || errors.Is(err, os.ErrClosed) || errors.Is(err, net.ErrClosed) {
				return
			}
			if errors.Is(err, io.EOF) || errors.Is(err, unix.ENETDOWN) || errors.Is(err, unix.EINTR) {
				// An empty read, or the socket's one-time report that
				// the link went down (the carrier watcher tells flows).
				continue
			}
			e.Counters.RxErrors.Add(1)
			if failures++; failures == 1 || failures%1000 == 0 {
				e.log.Warn("read failed", "device", e.cfg.Dev.Name, "error", err, "failures", failures)
			}
			if failures > 10 {
				// A persistent error: do not spin.
				select {
				case <-e.ctx.Done():
					return
				case <-time.After(10 * time.Millisecond):
				}
			}
			continue
		}
		failures = 0
		e.Input(buf[:n])
	}
}

// Input processes one received frame. The reader calls it for every
// frame; tests may call it too. It does not keep b.
func (e *Engine) Input(b []byte) {
	c := &e.Counters
	c.FramesIn.Add(1)
	c.BytesIn.Add(uint64(len(b)))
	if et, ok := frame.EtherType(b); !ok {
		c.Short.Add(1)
		return
	} else if et != e.etype {
		c.OtherEtherType.Add(1)
		return
	}
	h, payload, err := frame.Decode(b)
	switch err {
	case nil:
	case frame.ErrLength:
		c.Truncated.Add(1)
		return
	default:
		c.Short.Add(1)
		return
	}
	switch {
	case h.Src == e.mac:
		c.Own.Add(1)
		return
	case h.Src.IsMulticast():
		c.BadSource.Add(1)
		return
	}
	if h.EID == frame.MgmtEID {
		if h.Dst != e.mac && !h.Dst.IsBroadcast() {
			c.NotForUs.Add(1)
			return
		}
		e.handleMgmt(h.Src, payload)
		return
	}
	if h.Dst != e.mac {
		c.NotForUs.Add(1)
		return
	}
	e.mu.RLock()
	fr := e.flows[h.EID]
	var up, unconfirmed bool
	if fr != nil {
		up = fr.state == stateUp
		unconfirmed = !fr.confirmed
	}
	e.mu.RUnlock()
	switch {
	case fr == nil || !up:
		c.UnknownEID.Add(1)
	case fr.peer != h.Src:
		c.WrongPeer.Add(1)
	default:
		if unconfirmed {
			// Data from the requester confirms the flow as well.
			e.mu.Lock()
			e.confirmLocked(fr)
			e.mu.Unlock()
		}
		e.deliver(fr, payload)
	}
}

func (e *Engine) handleMgmt(src frame.MAC, b []byte) {
	var m wire.Msg
	switch err := m.Decode(b); err {
	case nil:
	case wire.ErrVersion:
		if n := e.Counters.BadVersion.Add(1); n == 1 || n%1000 == 0 {
			e.log.Warn("management message of another protocol version refused (the station runs another build)",
				"from", src.String(), "version", wire.VersionOf(b), "want", wire.Version, "refused", n)
		}
		return
	default:
		e.Counters.BadMgmt.Add(1)
		return
	}
	if m.Src > maxEID || m.Dst > maxEID {
		// The frame header carries 16-bit endpoint ids: no flow end
		// of a station on this medium has a larger one.
		e.Counters.BadMgmt.Add(1)
		return
	}
	switch m.Type {
	case wire.Query:
		e.onQuery(src, m)
	case wire.QueryReply:
		e.onQueryReply(src, m)
	case wire.AllocReq:
		e.onAllocReq(src, m)
	case wire.AllocResp:
		e.onAllocReply(src, m)
	case wire.Dealloc:
		e.onDealloc(src, m)
	case wire.Confirm:
		e.onConfirm(src, m)
	case wire.DeallocAck:
		// Deallocation is one message here, never acknowledged.
	}
}

// sendMgmt sends one management message to dst.
func (e *Engine) sendMgmt(dst frame.MAC, m wire.Msg) error {
	b := make([]byte, frame.HeaderLen, frame.HeaderLen+m.Len())
	b = m.Append(b)
	frame.PutHeader(b, frame.Header{Dst: dst, Src: e.mac, EtherType: e.etype, EID: frame.MgmtEID}, len(b)-frame.HeaderLen)
	if err := e.send(b); err != nil {
		return fmt.Errorf("%s: send %s to %s on %s: %w", e.cfg.Kind, m.Type, dst, e.cfg.Dev.Name, err)
	}
	return nil
}

// send writes one frame, counting it. The error is the medium's, not
// wrapped: on the data path a failing link must not allocate per frame.
func (e *Engine) send(b []byte) error {
	if err := e.med.WriteFrame(b); err != nil {
		e.Counters.TxErrors.Add(1)
		return err
	}
	e.Counters.FramesOut.Add(1)
	e.Counters.BytesOut.Add(uint64(len(b)))
	return nil
}

// Close deallocates every flow (telling the peers), closes the medium
// and waits for every goroutine of the engine.
func (e *Engine) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	var up []*flowRec
	for _, fr := range e.flows {
		if fr.state == stateUp {
			up = append(up, fr)
		}
	}
	e.mu.Unlock()
	e.cancel()
	for _, fr := range up {
		e.endFlow(fr, endClosing)
	}
	err := e.med.Close()
	e.wg.Wait()
	if err != nil {
		return fmt.Errorf("%s: close %s: %w", e.cfg.Kind, e.cfg.Dev.Name, err)
	}
	return nil
}
