package shim

import (
	"errors"
	"net"
	"os"
	"time"

	"github.com/ouro-net/ouro/ipcpd/eth/frame"
	"github.com/ouro-net/ouro/ipcpd/shim/admit"
)

// Medium moves whole Ethernet frames (from the destination MAC on,
// without FCS). ReadFrame is called from one goroutine, WriteFrame from
// several at once.
type Medium interface {
	// ReadFrame blocks until a frame arrives and copies it into b. After
	// Close it must return promptly with an error.
	ReadFrame(b []byte) (int, error)
	// WriteFrame sends one frame.
	WriteFrame(b []byte) error
	// Close releases the medium and unblocks ReadFrame.
	Close() error
}

// Device is an opened network interface.
type Device struct {
	// Name is the interface name.
	Name string
	// Index is the interface index, for the netlink watcher.
	Index int
	// MAC is the station's own address: the source of every frame it
	// sends, and the destination of the unicast frames it accepts.
	MAC frame.MAC
	// MTU is the device MTU (the Ethernet payload size).
	MTU int
	// Carrier is the link state when the device was opened.
	Carrier bool
	// Info describes the medium for show output.
	Info string
	// Medium carries the frames.
	Medium Medium
}

// NewDevice describes the opened interface ifi, whose frames m
// carries, as station mac (which may differ from ifi's own address, as
// on a TAP device); its carrier is up when ifi is up and running.
func NewDevice(ifi *net.Interface, mac frame.MAC, info string, m Medium) *Device {
	return &Device{
		Name:    ifi.Name,
		Index:   ifi.Index,
		MAC:     mac,
		MTU:     ifi.MTU,
		Carrier: ifi.Flags&net.FlagUp != 0 && ifi.Flags&net.FlagRunning != 0,
		Info:    info,
		Medium:  m,
	}
}

// FileMedium is a Medium on a descriptor that moves one frame per read
// or write: a bound AF_PACKET socket, or a TAP device opened with
// IFF_NO_PI. Close wakes a pending read when the descriptor is under
// the runtime poller (opened non-blocking).
type FileMedium struct{ F *os.File }

// ReadFrame reads one frame. Errors are *os.PathError naming the
// device; they are not wrapped again, so a failing link costs no
// allocation per frame.
func (m *FileMedium) ReadFrame(b []byte) (int, error) { return m.F.Read(b) }

// WriteFrame sends one frame.
func (m *FileMedium) WriteFrame(b []byte) error {
	_, err := m.F.Write(b)
	return err
}

// Close closes the descriptor, waking the reader; closing twice is not
// an error.
func (m *FileMedium) Close() error {
	if err := m.F.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
		return err
	}
	return nil
}

// Timers are the engine's timeouts and limits; zero fields take the
// defaults (see the package documentation).
type Timers struct {
	QueryTimeout  time.Duration
	QueryRetry    time.Duration
	CacheTTL      time.Duration
	AllocTimeout  time.Duration
	AllocRetry    time.Duration // also the spacing of repeated deallocs
	ArriveTimeout time.Duration
	// AllocMisses unanswered requests in a row mean the peer is gone;
	// DeallocTries deallocs without an ack are given up.
	AllocMisses, DeallocTries int
	// QueryRate is how many queries per second the station answers
	// (token bucket refill); QueryBurst is the bucket size.
	QueryRate  float64
	QueryBurst int
	// MaxFlows, MaxFlowsPerPeer, MaxPending and MaxPendingPerPeer cap
	// the incoming flows (see the constants of the same names).
	MaxFlows, MaxFlowsPerPeer, MaxPending, MaxPendingPerPeer int
	// ConfirmTimeout bounds the wait for a requester's Confirm.
	ConfirmTimeout time.Duration
}

// Defaults for Timers.
const (
	DefaultQueryTimeout  = time.Second
	DefaultQueryRetry    = 250 * time.Millisecond
	DefaultCacheTTL      = 30 * time.Second
	DefaultAllocTimeout  = 10 * time.Second
	DefaultAllocRetry    = 250 * time.Millisecond
	DefaultAllocMisses   = 4
	DefaultDeallocTries  = 3
	DefaultArriveTimeout = 7 * time.Second
	DefaultQueryRate     = admit.DefaultAnswerRate
	DefaultQueryBurst    = admit.DefaultAnswerBurst
)

// deliverTimeout bounds how long the reader waits for an application
// that does not drain its data channel.
const deliverTimeout = 50 * time.Millisecond

func (t Timers) limits() admit.Limits {
	return admit.Limits{Flows: t.MaxFlows, FlowsPerPeer: t.MaxFlowsPerPeer, Pending: t.MaxPending, PendingPerPeer: t.MaxPendingPerPeer}
}

func (t Timers) withDefaults() Timers {
	set := func(d *time.Duration, def time.Duration) {
		if *d <= 0 {
			*d = def
		}
	}
	set(&t.QueryTimeout, DefaultQueryTimeout)
	set(&t.QueryRetry, DefaultQueryRetry)
	set(&t.CacheTTL, DefaultCacheTTL)
	set(&t.AllocTimeout, DefaultAllocTimeout)
	set(&t.AllocRetry, DefaultAllocRetry)
	set(&t.ArriveTimeout, DefaultArriveTimeout)
	if t.QueryRate <= 0 {
		t.QueryRate = DefaultQueryRate
	}
	if t.QueryBurst <= 0 {
		t.QueryBurst = DefaultQueryBurst
	}
	seti := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	seti(&t.AllocMisses, DefaultAllocMisses)
	seti(&t.DeallocTries, DefaultDeallocTries)
	seti(&t.MaxFlows, admit.MaxFlows)
	seti(&t.MaxFlowsPerPeer, admit.MaxFlowsPerPeer)
	seti(&t.MaxPending, admit.MaxPending)
	seti(&t.MaxPendingPerPeer, admit.MaxPendingPerPeer)
	set(&t.ConfirmTimeout, admit.ConfirmTimeout)
	return t
}
