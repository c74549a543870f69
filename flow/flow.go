// Package flow is the API applications use to talk over ouro. A flow is
// allocated to a name, never to an address or a port: Alloc asks the
// host's IRMd for a flow to a name with a QoS spec, Listen binds the
// process to a name and Accept yields the flows that arrive for it.
//
// A *Flow is a net.Conn. On a raw flow one Write is one packet and one
// Read returns one packet. Close deallocates: the peer's Read returns
// io.EOF. A flow whose IPCP died fails with ErrDown rather than
// blocking. Data moves between the application and its IPCP over a
// data channel handed over by the IRMd; the IRMd is not on the path.
// Two shortcuts keep the IPCP off the path where it adds nothing: two
// processes on one host in a local layer share one channel (the IRMd
// brokers it), and a udp4/udp6 shim hands each end a connected socket
// to the peer application's (direct.go). ReadBatch and WriteBatch move
// many packets per system call on raw flows.
package flow

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ouro-net/ouro/flow/frct"
	"github.com/ouro-net/ouro/lib/ctrl"
	"github.com/ouro-net/ouro/lib/pipe"
	"github.com/ouro-net/ouro/lib/qos"
	"github.com/ouro-net/ouro/lib/rundir"
	"github.com/ouro-net/ouro/lib/seal"
)

// QoS is the quality of service a flow is allocated with.
type QoS = qos.Spec

// Errors a flow reports.
var (
	// ErrDown means the flow lost its IPCP (the IPCP process died or
	// was destroyed): no more data will pass.
	ErrDown = errors.New("flow down: its IPCP is gone")
	// ErrTooBig means a Write exceeded the flow's MTU.
	ErrTooBig = errors.New("packet exceeds the flow MTU")
	// ErrNoDaemon means no IRMd answers on the run directory.
	ErrNoDaemon = errors.New("no IRMd running")
)

// Option adjusts Alloc and Listen.
type Option func(*options)

type options struct {
	rundir string
	layer  string
	pin    ed25519.PublicKey  // encrypted flows: the server key Alloc insists on
	id     ed25519.PrivateKey // encrypted flows: the key a Listener signs with
	rekey  uint64             // encrypted flows: packets per key (0: default)
	psk    func() *seal.PSK   // encrypted flows: the layer secret (crypt.go), nil or giving nil: none
	dial   func(context.Context) (*ctrl.Conn, error)
	fwd    bool // WithForwarding
}

// WithRunDir picks the IRMd by run directory (default: $OURO_RUNDIR or
// the per-user default).
func WithRunDir(dir string) Option { return func(o *options) { o.rundir = dir } }

// WithForwarding marks the flows as a forwarding process's (an IPCP's
// lower flows): their data sockets make raw system calls, which spare a
// process that wakes at every burst the Go runtime's monitor thread
// (see lib/pipe). An application's flows keep the default, which gave
// the shorter one-hop round trip between applications.
func WithForwarding() Option { return func(o *options) { o.fwd = true } }

// WithLayer pins the allocation to one layer.
func WithLayer(layer string) Option { return func(o *options) { o.layer = layer } }

// WithDialer makes the control connection with dial instead of dialing
// the IRMd's public socket. An IPCP passes its Host's Dial: the IRMd
// then knows the connection as the IPCP's own (it leaves the IPCP's
// layer out of its allocations) by the channel it was made over.
func WithDialer(dial func(context.Context) (*ctrl.Conn, error)) Option {
	return func(o *options) { o.dial = dial }
}

// connect makes the control connection for one Alloc or Listen.
func (o options) connect(ctx context.Context) (*ctrl.Conn, error) {
	if o.dial == nil {
		return Dial(o.rundir)
	}
	c, err := o.dial(ctx)
	if err != nil {
		return nil, fmt.Errorf("control connection: %w", err)
	}
	return c, nil
}

func collect(opts []Option) options {
	var o options
	for _, f := range opts {
		f(&o)
	}
	o.rundir = rundir.Resolve(o.rundir)
	return o
}

// Dial connects to the IRMd of dir, with a clear error when none runs.
func Dial(dir string) (*ctrl.Conn, error) {
	dir = rundir.Resolve(dir)
	c, err := ctrl.Dial(rundir.Socket(dir))
	if err != nil {
		return nil, fmt.Errorf("%w on %s (start one with: irm daemon --rundir %s &)", ErrNoDaemon, dir, dir)
	}
	return c, nil
}

// Alloc allocates a flow to name with QoS q.
func Alloc(ctx context.Context, name string, q QoS, opts ...Option) (*Flow, error) {
	o := collect(opts)
	if o.pskNow() != nil {
		q.Encrypt = true // a secret is only ever proved on a sealed flow
	}
	conn, err := o.connect(ctx)
	if err != nil {
		return nil, err
	}
	// A direct flow keeps this connection: the IRMd reports the end of
	// its layer over it.
	var mu sync.Mutex
	var direct *Flow
	downed := false
	peer := ctrl.NewPeer(conn, func(_ context.Context, req *ctrl.Request) (any, []*os.File, error) {
		if req.Op != ctrl.OpFlowDown {
			return nil, nil, fmt.Errorf("unexpected %q", req.Op)
		}
		mu.Lock()
		f := direct
		downed = true
		mu.Unlock()
		if f != nil {
			f.forceDown()
		}
		return nil, nil, nil
	}, nil)
	closePeer := func() {
		peer.Close()
		peer.Wait()
	}
	var fi ctrl.FlowInfo
	files, err := peer.Call(ctx, ctrl.OpFlowAlloc, ctrl.FlowAlloc{Name: name, QoS: q, Layer: o.layer}, &fi)
	if err != nil {
		closePeer()
		var re *ctrl.RemoteError
		if errors.As(err, &re) {
			return nil, errors.New(re.Msg)
		}
		return nil, fmt.Errorf("allocate flow to %q: %w", name, err)
	}
	f, err := fromFiles(fi, files)
	if err == nil && o.fwd {
		f.setForwarding()
	}
	if err == nil && fi.QoS.Encrypt {
		if err = f.start(func() error { return f.clientHandshake(ctx, o) }); err != nil {
			f = nil
		}
	}
	if err != nil || !fi.Direct {
		closePeer()
		return f, err
	}
	f.onClose = closePeer
	mu.Lock()
	direct = f
	wasDown := downed
	mu.Unlock()
	if wasDown {
		f.forceDown()
	}
	return f, nil
}

func fromFiles(fi ctrl.FlowInfo, files []*os.File) (*Flow, error) {
	if len(files) != 1 {
		ctrl.CloseFiles(files)
		return nil, fmt.Errorf("flow %d: IRMd sent %d descriptors, want 1", fi.ID, len(files))
	}
	p, err := pipe.New(files[0])
	if err != nil {
		return nil, fmt.Errorf("flow %d: %w", fi.ID, err)
	}
	return newFlow(fi, p)
}

// State is whether a flow currently has a path.
type State int32

// Flow states.
const (
	Up State = iota
	Down
)

func (s State) String() string {
	if s == Down {
		return "down"
	}
	return "up"
}

// Event reports a change of a flow's state, as signalled by its IPCP
// (for example carrier loss under a shim).
type Event struct {
	State State
	At    time.Time
}

// Addr is the address of a flow end: the name it was allocated to.
type Addr struct{ Name string }

// Network returns "ouro".
func (Addr) Network() string { return "ouro" }

// String returns the name.
func (a Addr) String() string { return a.Name }

// Flow is an allocated flow. It implements net.Conn.
type Flow struct {
	info   ctrl.FlowInfo
	p      *pipe.Pipe
	rel    *frct.Conn // end-to-end reliability, for QoS that asks for it
	state  atomic.Int32
	eof    atomic.Bool
	closed atomic.Bool
	// ce counts the packets that arrived marked congestion experienced
	// (DataCE records), raw flows and FRCT's alike.
	ce     atomic.Uint64
	events chan Event
	once   sync.Once
	// forced is set when the IRMd reports a direct flow's layer gone.
	forced atomic.Bool
	// onClose, if set, runs once after Close (direct flows drop their
	// control connection).
	onClose func()

	// dp is the data socket the IPCP handed over (a Direct record), nil
	// until then; gone says the IPCP died after the hand-over. See
	// direct.go.
	dp   atomic.Pointer[pipe.Pipe]
	gone atomic.Bool
	dmu  sync.Mutex // orders deadline changes with the hand-over
	fwd  bool       // WithForwarding; under dmu
	rdl  time.Time
	wdl  time.Time

	// Encryption (crypt.go): sess is set once by the key exchange,
	// before the flow is handed to the caller or FRCT.
	sess      *seal.Session
	live      atomic.Pointer[seal.Session] // sess until closeRaw closes it (its timers)
	lowMTU    int                          // the path MTU before sealing's overhead
	rmu, wmu  sync.Mutex                   // guard rbuf and wbuf
	rbuf      []byte                       // sealed packet being read
	rbat      [][]byte                     // sealed packets being read by ReadBatch
	rsiz      []int
	wbuf      []byte   // sealed packet being written
	wbat      []byte   // arena of the sealed packets written by WriteBatch
	wout      [][]byte // the sealed packets of one batch write
	hsHello   []byte   // server: the hello answered, for repeats
	hsReply   []byte   // server: the reply sent
	hsRepeats atomic.Int32
	hsDrops   atomic.Uint64 // handshake messages dropped during the exchange
	authed    bool          // the exchange proved the layer secret (WithPSK)
}

// forceDown ends a direct flow whose layer is gone: Read and Write
// return ErrDown from now on, as on a flow whose IPCP died.
func (f *Flow) forceDown() {
	if f.forced.Swap(true) {
		return
	}
	f.state.Store(int32(Down))
	select {
	case f.events <- Event{State: Down, At: time.Now()}:
	default:
	}
	f.p.Close()
	if dp := f.dp.Load(); dp != nil {
		dp.Close()
	}
}

func newFlow(fi ctrl.FlowInfo, p *pipe.Pipe) (*Flow, error) {
	f := &Flow{info: fi, p: p, events: make(chan Event, 16)}
	if fi.QoS.Encrypt {
		return f, nil // the caller runs the key exchange and start
	}
	if err := f.start(nil); err != nil {
		return nil, err
	}
	return f, nil
}

// start finishes setting up a new flow: the key exchange (hs) if the
// flow is encrypted, then FRCT if its QoS asks for it. On failure the
// flow is closed.
func (f *Flow) start(hs func() error) error {
	fi := f.info
	if fi.QoS.Encrypt {
		if err := hs(); err != nil {
			f.closeRaw()
			return err
		}
	}
	if fi.QoS.UsesFRCT() {
		timeout := fi.QoS.PeerTimeout
		if timeout == 0 {
			timeout = frct.DefaultPeerTimeout
		}
		cc := frct.CongestionAuto
		if fi.QoS.Congestion {
			cc = frct.CongestionOn
		}
		c, err := frct.New(lowerOf{f}, frct.Config{
			Reliable: fi.QoS.Reliable, InOrder: fi.QoS.InOrder, PeerTimeout: timeout, Congestion: cc,
		})
		if err != nil {
			f.closeRaw()
			return fmt.Errorf("flow %d: FRCT: %w", fi.ID, err)
		}
		f.rel = c
	}
	return nil
}

// lowerOf is the raw packet service FRCT runs over: the flow's channel.
type lowerOf struct{ f *Flow }

func (l lowerOf) ReadPacket(b []byte) (int, error) {
	n, _, err := l.ReadPacketECN(b)
	return n, err
}

// ReadPackets makes the flow's channel an frct.BatchLower: a raw flow
// reads up to len(bufs) packets with one system call (an encrypted one
// opens them one at a time).
func (l lowerOf) ReadPackets(bufs [][]byte, sizes []int, ce []bool) (int, error) {
	f := l.f
	var (
		n   int
		err error
	)
	if f.sess != nil {
		var c bool
		n, c, err = f.readPacket(bufs[0])
		if errors.Is(err, io.ErrShortBuffer) {
			n, err = -1, nil
		}
		if err == nil {
			sizes[0], ce[0] = n, c
			n = 1
		}
	} else {
		n, err = f.readBatchRaw(bufs, sizes, ce)
	}
	if errors.Is(err, ErrDown) {
		return n, io.EOF
	}
	return n, err
}

// WritePackets sends the packets in order, a raw flow's with as few
// system calls as the channel allows.
func (l lowerOf) WritePackets(bufs [][]byte) (int, error) {
	f := l.f
	if f.sess != nil {
		for i, b := range bufs {
			if err := f.writePacket(b); err != nil {
				return i, f.mapErr(err)
			}
		}
		return len(bufs), nil
	}
	n, err := f.data().WriteBatch(bufs)
	if err != nil {
		return n, f.mapErr(err)
	}
	return n, nil
}

// ReadPacketECN makes the flow's channel an frct.ECNLower: a packet
// the layer marked (a DataCE record) is reported, and FRCT echoes the
// mark to the sender.
func (l lowerOf) ReadPacketECN(b []byte) (int, bool, error) {
	n, ce, err := l.f.readPacket(b)
	if errors.Is(err, ErrDown) {
		return n, ce, io.EOF
	}
	return n, ce, err
}

func (l lowerOf) WritePacket(b []byte) error {
	if l.f.info.MTU > 0 && len(b) > l.f.info.MTU {
		return fmt.Errorf("%w: %d bytes, MTU %d", ErrTooBig, len(b), l.f.info.MTU)
	}
	if err := l.f.writePacket(b); err != nil {
		return l.f.mapErr(err)
	}
	return nil
}

// Bend makes the flow's channel an frct.Bender: a pipe.Bend record
// tells the IPCP to carry the packets written after it on path label
// (a unicast layer hashes it at every hop; other IPCPs ignore it).
func (l lowerOf) Bend(label uint8) error {
	if err := l.f.p.WriteKind(pipe.Bend, []byte{label}); err != nil {
		return l.f.mapErr(err)
	}
	return nil
}

func (l lowerOf) MTU() int {
	if l.f.info.MTU > 0 {
		return l.f.info.MTU
	}
	if l.f.sess != nil {
		return 1400 - seal.Overhead
	}
	return 1400
}

func (l lowerOf) Close() error {
	l.f.closeRaw()
	return nil
}

// ID returns the flow's identifier on this host.
func (f *Flow) ID() uint64 { return f.info.ID }

// Name returns the name the flow was allocated to.
func (f *Flow) Name() string { return f.info.Name }

// QoS returns the flow's QoS spec.
func (f *Flow) QoS() QoS { return f.info.QoS }

// MTU returns the largest packet one Write may carry: the path MTU for
// raw flows, the largest message FRCT reassembles for the others.
func (f *Flow) MTU() int {
	if f.rel != nil {
		return frct.DefaultMaxMessage
	}
	return f.info.MTU
}

// CEReceived returns how many packets arrived marked congestion
// experienced by the layer. A raw flow only counts them (it has no
// congestion control to tell); on an FRCT flow they are also echoed to
// the sender (see Reliability's ECNEchoed and the sender's ECNCuts).
func (f *Flow) CEReceived() uint64 { return f.ce.Load() }

// Reliability returns FRCT's counters, or nil on a raw flow.
func (f *Flow) Reliability() *frct.Stats {
	if f.rel == nil {
		return nil
	}
	s := f.rel.Stats()
	return &s
}

// Layer returns the layer the flow runs in.
func (f *Flow) Layer() string { return f.info.Layer }

// State returns whether the flow has a path.
func (f *Flow) State() State { return State(f.state.Load()) }

// Events delivers state changes as Read observes them; it drops events
// nobody collects.
func (f *Flow) Events() <-chan Event { return f.events }

// Read reads one packet. It returns io.EOF once the peer deallocated,
// ErrDown if the flow's IPCP is gone, and io.ErrShortBuffer (with the
// truncated packet) if b is smaller than the packet. On a reliable flow
// it reads a stream: a message longer than b comes over several Reads.
func (f *Flow) Read(b []byte) (int, error) {
	if f.rel != nil {
		return f.rel.Read(b)
	}
	return f.readRaw(b)
}

func (f *Flow) readRaw(b []byte) (int, error) {
	n, _, err := f.readPacket(b)
	return n, err
}

// readRawCE is readRaw that also reports whether the packet arrived
// marked congestion experienced (counted in CEReceived). Packets over
// the direct data socket are never marked: it carries no layer header,
// and a DataCE record there could only come from the peer application,
// so it is ignored like any other record that is not Data.
func (f *Flow) readRawCE(b []byte) (int, bool, error) {
	if f.closed.Load() {
		return 0, false, net.ErrClosed
	}
	if f.eof.Load() {
		return 0, false, io.EOF
	}
	for {
		if dp := f.dp.Load(); dp != nil {
			n, err := f.readDirect(dp, b)
			return n, false, err
		}
		n, k, err := f.p.Read(b)
		if err != nil && !errors.Is(err, io.ErrShortBuffer) {
			return 0, false, f.mapErr(err)
		}
		switch k {
		case pipe.Data:
			return n, false, err
		case pipe.DataCE:
			f.ce.Add(1)
			return n, true, err
		case pipe.Dealloc:
			f.eof.Store(true)
			return 0, false, io.EOF
		case pipe.Down, pipe.Up:
			f.setState(k)
		case pipe.Direct:
			f.goDirect()
		}
	}
}

// setState applies a Down or Up record.
func (f *Flow) setState(k pipe.Kind) {
	s := Up
	if k == pipe.Down {
		s = Down
	}
	f.state.Store(int32(s))
	select {
	case f.events <- Event{State: s, At: time.Now()}:
	default:
	}
}

// Write sends one packet (on a reliable flow, one message of up to
// MTU() bytes; longer writes are split).
func (f *Flow) Write(b []byte) (int, error) {
	if f.rel != nil {
		return f.rel.Write(b)
	}
	if f.closed.Load() {
		return 0, net.ErrClosed
	}
	if f.info.MTU > 0 && len(b) > f.info.MTU {
		return 0, fmt.Errorf("%w: %d bytes, MTU %d", ErrTooBig, len(b), f.info.MTU)
	}
	if err := f.writePacket(b); err != nil {
		return 0, f.mapErr(err)
	}
	return len(b), nil
}

func (f *Flow) mapErr(err error) error {
	if f.forced.Load() && !f.closed.Load() {
		return ErrDown
	}
	switch {
	case errors.Is(err, pipe.ErrGone):
		f.state.Store(int32(Down))
		return ErrDown
	case errors.Is(err, net.ErrClosed) && f.closed.Load():
		return net.ErrClosed
	}
	return err
}

// Close deallocates the flow; the peer's Read returns io.EOF. On a
// reliable flow it first lingers until what was written is
// acknowledged (or FRCT's linger bound passes).
func (f *Flow) Close() error {
	if f.rel != nil {
		return f.rel.Close()
	}
	f.closeRaw()
	return nil
}

func (f *Flow) closeRaw() {
	f.once.Do(func() {
		f.closed.Store(true)
		if s := f.live.Swap(nil); s != nil {
			s.Close()
		}
		f.p.Dealloc()
		if dp := f.dp.Load(); dp != nil {
			dp.Close()
		}
		if f.onClose != nil {
			f.onClose()
		}
	})
}

// LocalAddr returns the flow's name.
func (f *Flow) LocalAddr() net.Addr { return Addr{Name: f.info.Name} }

// RemoteAddr returns the flow's name.
func (f *Flow) RemoteAddr() net.Addr { return Addr{Name: f.info.Name} }

// SetDeadline sets both deadlines.
func (f *Flow) SetDeadline(t time.Time) error {
	if f.rel != nil {
		return f.rel.SetDeadline(t)
	}
	if err := f.SetReadDeadline(t); err != nil {
		return err
	}
	return f.SetWriteDeadline(t)
}

// SetReadDeadline sets the read deadline.
func (f *Flow) SetReadDeadline(t time.Time) error {
	if f.rel != nil {
		return f.rel.SetReadDeadline(t)
	}
	f.dmu.Lock()
	defer f.dmu.Unlock()
	f.rdl = t
	if dp := f.dp.Load(); dp != nil {
		// The channel to the IPCP is the watcher's now: no deadline.
		return dp.SetReadDeadline(t)
	}
	return f.p.SetReadDeadline(t)
}

// SetWriteDeadline sets the write deadline.
func (f *Flow) SetWriteDeadline(t time.Time) error {
	if f.rel != nil {
		return f.rel.SetWriteDeadline(t)
	}
	f.dmu.Lock()
	defer f.dmu.Unlock()
	f.wdl = t
	if dp := f.dp.Load(); dp != nil {
		return dp.SetWriteDeadline(t)
	}
	return f.p.SetWriteDeadline(t)
}

// Queued reports how many bytes written on the flow the other side (its
// IPCP, or the peer's data socket) has not taken yet: the flow's own
// send queue, without allocating. A forwarding IPCP reads it as the
// congestion of its egress towards the flow.
func (f *Flow) Queued() int { return f.data().Queued() }

// SetNoDelay sets whether a reliable flow sends each small message as
// soon as its windows allow (true), as TCP_NODELAY does, or, by
// default, keeps small messages behind two packets in flight until the
// next ACK so that they leave packed (see Packing in flow/frct). Other
// flows ignore it.
func (f *Flow) SetNoDelay(on bool) {
	if f.rel != nil {
		f.rel.SetNoDelay(on)
	}
}

// SetSendBuffer sets the send buffer of the flow's channel (or data
// socket) to about 2n bytes (see pipe.Pipe.SetSendBuffer): writes block
// beyond that.
func (f *Flow) SetSendBuffer(n int) error { return f.data().SetSendBuffer(n) }

// Pending reports how many bytes are queued for Read; liveness checks
// use it to tell a silent peer from a reader that is behind.
func (f *Flow) Pending() int { return f.data().Pending() }

// Call makes one control request to the IRMd of dir on a fresh
// connection and decodes the reply into resp (if non-nil). Errors the
// IRMd reports come back as plain errors with its message. It is the
// untyped form, kept for callers that name operations by string; the
// irm CLI and the test harnesses manage hosts through the typed client
// (lib/irmclient), and applications need only Alloc and Listen.
func Call(ctx context.Context, dir, op string, req, resp any) error {
	conn, err := Dial(dir)
	if err != nil {
		return err
	}
	peer := ctrl.NewPeer(conn, nil, nil)
	defer func() {
		peer.Close()
		peer.Wait()
	}()
	files, err := peer.Call(ctx, op, req, resp)
	ctrl.CloseFiles(files)
	var re *ctrl.RemoteError
	if errors.As(err, &re) {
		return errors.New(re.Msg)
	}
	return err
}
