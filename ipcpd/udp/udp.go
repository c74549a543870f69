// Package udp is the udp4 and udp6 shim IPCP kinds: a layer whose
// members are UDP sockets. Each IPCP binds one socket (bootstrap
// parameters `ip ADDR [port N] [peer ADDR[:PORT] ...]`, default port
// 3435, a peer without a port is assumed on 3435); it finds names by
// asking its configured peers and carries each flow as datagrams between
// two sockets.
//
// `loss PCT` is a loss drill for labs and tests where tc netem is not
// at hand: PCT percent (at most 50) of the data packets of each flow are
// dropped at random before they are sent, and counted (drop-drill).
// Drops never come two in a row, so a layer above that declares a
// neighbour dead after three missed hellos stays up, whatever the rate;
// the layer above still sees real loss of its data, hellos, routing and
// allocation messages. The shim's own messages (queries, allocation,
// deallocation) are never dropped.
//
// # Wire format
//
// Every datagram starts with a 4-byte endpoint id (eid, big endian).
// A non-zero eid is a data frame: the eid is the receiver's endpoint of
// the flow and the rest of the datagram is the application's packet, so
// the data header is 4 bytes. Eids are handed out round robin by their
// owner, so a datagram of an old flow is unlikely to hit a new one; a
// data frame is also dropped unless it comes from the flow's peer
// address. Eid 0 marks a management frame: the rest is a management
// message of package ipcpd/shim/wire, the codec all shim kinds share
// (version 4; the udp shims spoke version 3 before it, the same layout,
// and a peer of that or any other version is refused: its frames are
// counted as drop-bad-version and logged with both versions):
//
//	[0 0 0 0][version=4][type] body
//
// The medium field of the alloc request and response ("port") is the
// sender's data socket for the flow (0: none): when both ends give one,
// the flow's data goes between those two sockets, straight from
// application to application, as records of the flow channel
// ([kind][payload]) instead of eid-led frames (see direct.go). Frames
// of another version, of an unknown type or of the wrong length are
// dropped and counted. The management frames are fixed binary layouts
// rather than msgpack: a shim frames as tightly as its medium allows,
// decoding is allocation-free and trivially fuzzed, and the version
// byte gives the evolution path that a version field in msgpack would.
//
// # Protocol
//
// The protocol below is the shim engine's (package ipcpd/shim, shared
// with eth-dix and tap); this package is its udp medium: the socket,
// the peers, the recvmmsg/sendmmsg data path and the direct data
// sockets (the engine's Link hooks Offer and Agreed carry the data
// port through the handshake). Its timers are the engine's, with the
// figures below.
//
// Query: Query(name) sends a query to every configured peer and
// retransmits to the silent ones (every 250 ms, 3 rounds); every IPCP
// answers every query, yes or no, so a miss is settled as soon as all
// peers said no. Positive answers are cached for 30 s (at most 4096;
// package ipcpd/shim/dir); a refusal or a vanished peer drops the
// entry. A name registered only on this IPCP is not reachable through
// it (the local layer serves same-host flows).
// Queries, and refusals of alloc requests, are answered within a token
// bucket (100/s, burst 50) per source, and for sources that are not
// configured peers also within one bucket they all share (1000/s,
// burst 100; admit.Answers, the same budget as the Ethernet shims'), so
// a flood from a stranger cannot silence a peer or another stranger;
// the excess is dropped and counted.
//
// Allocation: the requester sends an alloc req with its eid, the name
// hash, its MTU and the QoS, retransmitting every 250 ms. The responder
// answers "pending" at once (and to every retransmission) while its IRMd
// looks for an acceptor, then "ok" with its own eid and the agreed MTU
// (the smaller of both sides'), or a refusal. Four requests in a row
// without any answer (1 s) mean the peer is gone and the allocation
// fails with an error saying so; an allocation never takes more than
// 10 s. A retransmitted request
// for a flow already set up gets the same "ok" again. An "ok" that comes
// after the requester gave up is answered with a dealloc. A "busy"
// answer (the responder's caps are full, see Limits) is not final: the
// requester keeps asking until the allocation times out. The requester
// confirms an "ok" (ConfirmRepeats confirmations, 100 ms apart, and one
// more for every repeated "ok"); data from it confirms the flow too.
//
// # Limits
//
// A stranger needs no IRMd to send alloc requests, so what requests can
// make this IPCP hold is capped (package ipcpd/shim/admit): incoming
// flows in every state (MaxFlows, MaxFlowsPerPeer per source IP:port),
// and among them the pending ones, not yet confirmed: waiting for the
// IRMd (at most ArriveTimeout) or answered "ok" and waiting for the
// requester's confirmation (MaxPending, MaxPendingPerPeer). A flow not
// confirmed within ConfirmTimeout is ended (one dealloc to the
// requester, the application reads EOF, its data socket is closed).
// When peers are configured, the other sources together get at most
// half of each total, so a flood from many strangers cannot lock the
// configured peers out. A request beyond a cap is refused as busy, and
// the refusal counted by cap. Confirmed flows are not expired when idle:
// raw flows have no keepalive, and the IPCP does not see a direct flow's
// data, so idleness cannot be told from a dead peer; the per-source cap
// bounds them instead, and deallocation ends them. Outgoing flows are
// not capped here: local users allocate them through the IRMd. A flow's
// sender buffers at most 256 KiB (4 packets of the 65000-byte loopback
// MTU, 16 of an Ethernet one; one packet for a direct flow, whose data
// does not cross the IPCP), so that the capped flows also cap memory.
//
// Answers cost no more than their requests: a query is padded to the
// size of its reply; an alloc request to 64 bytes, more than everything
// one request can make the responder send unasked ("pending", the
// answer, and the dealloc should the flow expire); every other answer is
// no larger than the frame it answers. Answers that create no state
// (queries, refusals, acks of deallocs and deallocs of "ok"s for flows
// this IPCP does not have) are further rate-limited per source (see
// Query), so a forged source cannot use the IPCP as a reflector either.
//
// Deallocation: the end whose application closes (or dies) sends a
// dealloc, retransmitted until acknowledged (3 tries); the other end
// ends its flow with a Dealloc record, so that application reads io.EOF.
// On Close every flow gets one dealloc, unacknowledged.
//
// # MTU
//
// The MTU is the link MTU of the bound address minus the IP (20 or 40),
// UDP (8) and data (4) headers, capped at 65000, the flow layer's limit:
// 65000 on loopback, 1468 over Ethernet with IPv4. The handshake settles
// on the smaller MTU of both ends. Path MTU discovery is off on the
// socket (IP_PMTUDISC_DONT), so a path narrower than both links
// fragments rather than drops.
//
// # Data path
//
// One goroutine per flow reads the application's packets from the flow's
// pipe into a preallocated buffer behind the 4-byte header and sends each
// with one sendmsg. sendmmsg would not save a call there: the pipe hands
// over one packet per call, and gathering packets of several flows into
// one batch would cost a goroutine hand-off per packet. One receive
// goroutine reads up to 16 datagrams per recvmmsg call into preallocated
// buffers and writes each payload to its flow's pipe; a flow whose
// application stops reading therefore back-pressures the socket, whose
// buffer (SO_RCVBUF and SO_SNDBUF 4 MiB, forced when root) then drops.
// Nothing on the data path allocates. Every drop (truncated, oversize,
// bad version or type, malformed, unknown eid, wrong source, stale,
// rate-limited query) has a counter, shown by Show.
//
// There is no keepalive: a flow whose peer vanishes stays up until an
// end deallocates (flows with FRCT notice through its keepalive).
//
// Every timer and timestamp of the protocol (retransmissions, the
// allocation bound, the cache TTL, the confirmation timeout and the
// sweeper, the answer budgets) reads the IPCP's clock (lib/clock), real
// in use and virtual in tests. Only the IRMd's search for an acceptor
// (ArriveTimeout) is a context deadline in real time.
package udp

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/ouro-net/ouro/ipcpd"
	"github.com/ouro-net/ouro/ipcpd/shim"
	"github.com/ouro-net/ouro/lib/clock"
	"github.com/ouro-net/ouro/lib/ctrl"
)

// defaultTimers are the engine's timers on udp: queries in 3 rounds
// 250 ms apart, requests every 250 ms (4 unanswered: the peer is gone),
// an allocation within 10 s, the IRMd's search within ArriveTimeout.
func defaultTimers() shim.Timers {
	return shim.Timers{QueryTimeout: 750 * time.Millisecond, QueryRetry: 250 * time.Millisecond,
		AllocRetry: 250 * time.Millisecond, AllocMisses: 4, AllocTimeout: 10 * time.Second, CacheTTL: 30 * time.Second,
		DeallocTries: 3, ArriveTimeout: ArriveTimeout}
}

// IPCP is a udp4 or udp6 shim IPCP: the shim engine on a UDP socket.
type IPCP struct {
	h  *ipcpd.Host
	v6 bool
	// tm, clk, indirect and arrive may be set by tests before
	// Bootstrap: the engine's timers, its clock, whether every flow's
	// data stays on the IPCP's socket (tests of that path; see
	// direct.go), and the IRMd's acceptor search.
	tm       shim.Timers
	clk      clock.Clock
	indirect bool
	arrive   shim.ArriveFunc
	ctr      counters

	// Set by Bootstrap before the receive goroutine starts, then fixed.
	eng            *shim.Engine[netip.AddrPort]
	conn           *net.UDPConn
	rc             syscall.RawConn
	local          netip.AddrPort
	peers          []netip.AddrPort
	mtu, linkMTU   int
	rcvBuf, sndBuf int
	loss           float64 // loss drill: share of data packets dropped

	// Owned by the receive goroutine.
	rx     *receiver
	rxPend rxPending

	mu     sync.RWMutex
	booted bool
	closed bool
	rxWG   sync.WaitGroup // the receive goroutine
}

// New is the constructor of both kinds; h.Type tells udp4 from udp6.
func New(h *ipcpd.Host) (ipcpd.IPCP, error) {
	var v6 bool
	switch h.Type {
	case "udp4":
	case "udp6":
		v6 = true
	default:
		return nil, fmt.Errorf("udp IPCP: unknown type %q (want udp4 or udp6)", h.Type)
	}
	return &IPCP{h: h, v6: v6, tm: defaultTimers(), clk: clock.Real(), arrive: h.Arrive}, nil
}

// Bootstrap binds the socket, starts the engine and receiving.
func (u *IPCP) Bootstrap(_ context.Context, layer string, params map[string]string) (ctrl.IPCPBootstrapReply, error) {
	cfg, err := parseParams(u.h.Type, u.v6, params)
	if err != nil {
		return ctrl.IPCPBootstrapReply{}, err
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	switch {
	case u.closed:
		return ctrl.IPCPBootstrapReply{}, shim.ErrClosed
	case u.booted:
		return ctrl.IPCPBootstrapReply{}, fmt.Errorf("%s IPCP %s is already bootstrapped (at %s)", u.h.Type, u.h.Name, u.local)
	}
	network := "udp4"
	if u.v6 {
		network = "udp6"
	}
	conn, rcv, snd, err := listen(network, cfg.bind)
	if err != nil {
		return ctrl.IPCPBootstrapReply{}, fmt.Errorf("%s IPCP %s: %w", u.h.Type, u.h.Name, err)
	}
	rc, err := conn.SyscallConn()
	if err != nil {
		conn.Close()
		return ctrl.IPCPBootstrapReply{}, fmt.Errorf("%s IPCP %s: %w", u.h.Type, u.h.Name, err)
	}
	u.conn, u.rc, u.rcvBuf, u.sndBuf = conn, rc, rcv, snd
	u.local = conn.LocalAddr().(*net.UDPAddr).AddrPort()
	u.peers = cfg.peers
	u.loss = cfg.loss
	u.linkMTU = linkMTU(cfg.bind.Addr())
	u.mtu = payloadMTU(u.linkMTU, u.v6)
	u.rx = newReceiver(eidLen+u.mtu+1, u.clk.Now)
	// Received sources have no IPv6 zone: the engine knows the peers
	// by those; SendMgmt maps them back (canonical).
	peers := make([]netip.AddrPort, 0, len(cfg.peers))
	for _, p := range cfg.peers {
		peers = append(peers, noZone(p))
	}
	eng, err := shim.New(shim.Config[netip.AddrPort]{
		Kind: u.h.Type, Link: (*medium)(u), MTU: u.mtu, Headroom: eidLen, Peers: peers, Carrier: true,
		Arrive: u.arrive, Log: u.h.Log, Clock: u.clk, Timers: u.tm, Less: addrLess,
	})
	if err != nil {
		conn.Close()
		return ctrl.IPCPBootstrapReply{}, fmt.Errorf("%s IPCP %s: %w", u.h.Type, u.h.Name, err)
	}
	u.eng = eng
	u.booted = true
	u.rxWG.Add(1)
	go u.rxLoop()
	u.h.Log.Info("bound", "address", u.local, "peers", u.peers, "mtu", u.mtu, "rcvbuf", rcv, "sndbuf", snd)
	if u.loss != 0 {
		u.h.Log.Warn("loss drill: dropping data packets at random", "percent", u.loss*100)
	}
	return ctrl.IPCPBootstrapReply{Address: u.local.String(), MTU: u.mtu}, nil
}

// engine returns the engine, or an error unless the IPCP is
// bootstrapped and open.
func (u *IPCP) engine() (*shim.Engine[netip.AddrPort], error) {
	u.mu.RLock()
	defer u.mu.RUnlock()
	switch {
	case u.closed:
		return nil, shim.ErrClosed
	case !u.booted:
		return nil, fmt.Errorf("%s IPCP %s is not bootstrapped", u.h.Type, u.h.Name)
	}
	return u.eng, nil
}

// Register makes this IPCP answer peers' queries for name and accept
// flows to it.
func (u *IPCP) Register(_ context.Context, name string) error {
	eng, err := u.engine()
	if err != nil {
		return err
	}
	eng.Register(name)
	return nil
}

// Unregister withdraws name.
func (u *IPCP) Unregister(_ context.Context, name string) error {
	eng, err := u.engine()
	if err != nil {
		return err
	}
	if !eng.Unregister(name) {
		return fmt.Errorf("name %q is not registered in %s IPCP %s", name, u.h.Type, u.h.Name)
	}
	return nil
}

// Query reports whether a peer has name registered.
func (u *IPCP) Query(ctx context.Context, name string) (bool, error) {
	eng, err := u.engine()
	if err != nil {
		return false, err
	}
	return eng.Query(ctx, name)
}

// Alloc sets up a flow to the peer that has f.Name and, on success,
// starts moving its packets.
func (u *IPCP) Alloc(ctx context.Context, f *ipcpd.Flow) (int, error) {
	eng, err := u.engine()
	if err != nil {
		return 0, err
	}
	mtu, err := eng.Alloc(ctx, f)
	if err != nil {
		return 0, fmt.Errorf("%s IPCP %s: %w (peers: %s)", u.h.Type, u.h.Name, err, orNone(addrStrings(u.peers)))
	}
	return mtu, nil
}

func addrStrings(a []netip.AddrPort) []string {
	out := make([]string, len(a))
	for i, p := range a {
		out[i] = p.String()
	}
	return out
}

// Close ends every flow (one dealloc each to its peer), stops the
// engine, then closes the socket and waits for every goroutine.
func (u *IPCP) Close() error {
	u.mu.Lock()
	if u.closed {
		u.mu.Unlock()
		return nil
	}
	u.closed = true
	booted := u.booted
	u.mu.Unlock()
	if booted {
		u.eng.Close()
		u.conn.Close()
		u.rxWG.Wait()
	}
	return nil
}
