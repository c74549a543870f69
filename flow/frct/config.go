package frct

import (
	"errors"
	"fmt"
	"time"

	"github.com/ouro-net/ouro/lib/clock"
)

// Defaults applied to zero Config fields.
const (
	DefaultRTOMin      = 2 * time.Millisecond
	DefaultRTOMax      = 2 * time.Second
	DefaultInitialRTO  = 200 * time.Millisecond
	DefaultWindow      = 256
	DefaultMaxMessage  = 1 << 20
	DefaultDelayedACK  = time.Millisecond
	DefaultPeerTimeout = 10 * time.Second
	// DefaultLinger lets Close wait as long as the peer would be given
	// before being declared gone: under heavy loss a full window takes
	// several retransmission rounds to drain, and giving up earlier
	// would lose data the application believes sent.
	DefaultLinger = DefaultPeerTimeout
	// DefaultCCQueue is the default Config.CCQueue.
	DefaultCCQueue = 8
	// DefaultSendBuffer is the default Config.SendBuffer: four packets
	// of the largest loopback MTU, enough to keep such packets full.
	DefaultSendBuffer = 256 << 10
)

// MaxWindow is the largest window the 16-bit header field can carry.
const MaxWindow = 1<<16 - 1

// ErrInvalidConfig is wrapped by every Config validation error.
var ErrInvalidConfig = errors.New("frct: invalid config")

// Config tunes a Conn. Zero fields take the defaults above; both ends
// of a connection should use the same Window and MaxMessage.
type Config struct {
	// Clock drives every timer (default clock.Real()).
	Clock clock.Clock
	// Reliable turns on retransmission and flow control. When false the
	// connection is unreliable but sequenced: no duplicates, no
	// reordering, losses skipped, the writer never blocks on the peer.
	Reliable bool
	// InOrder, with Reliable, delivers messages in the order written;
	// without it a complete message is delivered as soon as it has
	// arrived. Unreliable connections are always sequenced.
	InOrder bool
	// RTOMin, RTOMax and InitialRTO bound and seed the retransmission
	// timeout (RFC 6298).
	RTOMin, RTOMax, InitialRTO time.Duration
	// Window is the receive window in packets, advertised to the peer;
	// it also caps the packets in flight (1..MaxWindow).
	Window int
	// ReorderBuffer bounds the out-of-order packets held (default and
	// maximum: Window).
	ReorderBuffer int
	// MaxMessage is the largest message; a longer Write is split into
	// messages of this size (default 1 MiB).
	MaxMessage int
	// DelayedACK bounds how long an ACK may wait to be piggy-backed or
	// coalesced; negative acknowledges every packet at once.
	DelayedACK time.Duration
	// KeepAlive is the send-idle interval after which a keepalive goes
	// out (default PeerTimeout/4); negative disables keepalives.
	KeepAlive time.Duration
	// PeerTimeout fails the connection with ErrPeerGone when nothing
	// arrived for this long; negative disables the check.
	PeerTimeout time.Duration
	// Linger bounds how long Close waits for outstanding data and the
	// FIN to be acknowledged; negative means do not wait.
	Linger time.Duration
	// Congestion selects congestion control (see the package
	// documentation): CongestionAuto, the default, runs it on reliable
	// connections.
	Congestion Congestion
	// CCQueue is how many of its packets the congestion controller lets
	// a flow keep queued at the bottleneck (default DefaultCCQueue): at
	// 100 Mbit/s, 8 packets of 1400 bytes are 0.9 ms of queue.
	CCQueue int
	// SendBuffer bounds, in bytes, the small messages a reliable
	// connection holds when it cannot send them at once; they leave
	// packed, several to a packet (see Packing in the package
	// documentation). Default DefaultSendBuffer; negative: no buffer
	// and no packing, Write waits for the windows as before.
	SendBuffer int
	// NoDelay sends a message that fits in a packet as soon as the
	// windows and the pacer allow, as TCP_NODELAY does. Without it, a
	// reliable connection with two or more packets in flight keeps a
	// message that would not fill a packet in the send buffer until
	// the next ACK, so a stream of small messages leaves packed (see
	// Packing in the package documentation); a lone message, or a
	// request answered before the next, still goes at once.
	NoDelay bool
	// NoBend keeps the connection on its path: without it a connection
	// with congestion control over a Bender lower changes its path
	// label on sustained congestion (see Path bending in the package
	// documentation).
	NoBend bool
}

// Congestion selects whether a Conn runs congestion control.
type Congestion uint8

// Congestion modes.
const (
	CongestionAuto Congestion = iota // on for reliable connections
	CongestionOn                     // on, also for an unreliable connection (it then keeps send times)
	CongestionOff                    // off: the windows alone pace the sender
)

// congestionOn reports whether the sender runs congestion control.
func (c Config) congestionOn() bool {
	return c.Reliable && c.Congestion != CongestionOff || c.Congestion == CongestionOn
}

// withDefaults fills zero fields and validates the result.
func (c Config) withDefaults() (Config, error) {
	if c.Clock == nil {
		c.Clock = clock.Real()
	}
	setDur := func(d *time.Duration, def time.Duration) {
		if *d == 0 {
			*d = def
		}
	}
	setDur(&c.RTOMin, DefaultRTOMin)
	setDur(&c.RTOMax, DefaultRTOMax)
	setDur(&c.InitialRTO, min(max(DefaultInitialRTO, c.RTOMin), c.RTOMax))
	setDur(&c.DelayedACK, DefaultDelayedACK)
	setDur(&c.PeerTimeout, DefaultPeerTimeout)
	if c.KeepAlive == 0 {
		c.KeepAlive = DefaultPeerTimeout / 4
		if c.PeerTimeout > 0 {
			c.KeepAlive = c.PeerTimeout / 4
		}
	}
	setDur(&c.Linger, DefaultLinger)
	if c.Window == 0 {
		c.Window = DefaultWindow
	}
	if c.CCQueue == 0 {
		c.CCQueue = min(DefaultCCQueue, c.Window)
	}
	if c.ReorderBuffer == 0 {
		c.ReorderBuffer = c.Window
	}
	if c.MaxMessage == 0 {
		c.MaxMessage = DefaultMaxMessage
	}
	if c.SendBuffer == 0 {
		c.SendBuffer = DefaultSendBuffer
	}
	return c, c.validate()
}

func (c Config) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	switch {
	case c.RTOMin <= 0:
		return bad("RTOMin %v must be positive", c.RTOMin)
	case c.RTOMax < c.RTOMin:
		return bad("RTOMax %v below RTOMin %v", c.RTOMax, c.RTOMin)
	case c.InitialRTO < c.RTOMin || c.InitialRTO > c.RTOMax:
		return bad("InitialRTO %v outside [RTOMin %v, RTOMax %v]", c.InitialRTO, c.RTOMin, c.RTOMax)
	case c.Window < 1 || c.Window > MaxWindow:
		return bad("Window %d outside [1, %d]", c.Window, MaxWindow)
	case c.ReorderBuffer < 1 || c.ReorderBuffer > c.Window:
		return bad("ReorderBuffer %d outside [1, Window %d]", c.ReorderBuffer, c.Window)
	case c.MaxMessage < 1 || c.MaxMessage > 1<<30:
		return bad("MaxMessage %d outside [1, 1 GiB]", c.MaxMessage)
	case c.Congestion > CongestionOff:
		return bad("Congestion %d unknown", c.Congestion)
	case c.CCQueue < 1 || c.CCQueue > c.Window:
		return bad("CCQueue %d outside [1, Window %d]", c.CCQueue, c.Window)
	case c.KeepAlive > 0 && c.PeerTimeout > 0 && c.KeepAlive >= c.PeerTimeout:
		return bad("KeepAlive %v must be shorter than PeerTimeout %v", c.KeepAlive, c.PeerTimeout)
	}
	return nil
}
