package shim

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/ouro-net/ouro/ipcpd/eth/frame"
	"github.com/ouro-net/ouro/ipcpd/shim/admit"
	"golang.org/x/sys/unix"
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

// FileMedium is a Medium on a non-blocking descriptor under the runtime
// poller that moves one frame per read or write: a bound AF_PACKET
// socket, or a TAP device opened with IFF_NO_PI. Close wakes a pending
// read.
//
// Each read and write is a raw system call inside the poller's
// callback, as on lib/pipe's data path: the descriptor is non-blocking,
// so the call never blocks, and a scheduled call (os.File's) in a
// process whose processors were idle would wake the runtime's monitor
// thread by futex at every frame. What waits for a frame or for room
// waits in the poller.
type FileMedium struct {
	f      *os.File
	rc     syscall.RawConn
	closed atomic.Bool

	rbuf []byte // ReadFrame's call, for rfn (one reader)
	rn   int
	rerr unix.Errno
	rfn  func(uintptr) bool

	wmu  sync.Mutex // WriteFrame's call, for wfn (several writers)
	wbuf []byte
	werr unix.Errno
	wfn  func(uintptr) bool
}

// NewFileMedium takes f, a non-blocking descriptor (so that os.NewFile
// put it under the runtime poller), and closes it on Close.
func NewFileMedium(f *os.File) (*FileMedium, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Name(), err)
	}
	var flags int
	if err := rc.Control(func(fd uintptr) { flags, err = unix.FcntlInt(fd, unix.F_GETFL, 0) }); err != nil {
		return nil, fmt.Errorf("%s: %w", f.Name(), err)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: F_GETFL: %w", f.Name(), err)
	}
	if flags&unix.O_NONBLOCK == 0 {
		// A raw read on it would hold a Go processor until a frame came.
		return nil, fmt.Errorf("%s: the descriptor is blocking", f.Name())
	}
	m := &FileMedium{f: f, rc: rc}
	m.rfn, m.wfn = m.doRead, m.doWrite
	return m, nil
}

func (m *FileMedium) doRead(fd uintptr) bool {
	n, _, e := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(unsafe.SliceData(m.rbuf))), uintptr(len(m.rbuf)))
	if e == unix.EAGAIN || e == unix.EINTR {
		return false
	}
	m.rn, m.rerr = int(n), e
	return true
}

func (m *FileMedium) doWrite(fd uintptr) bool {
	_, _, e := unix.RawSyscall(unix.SYS_WRITE, fd, uintptr(unsafe.Pointer(unsafe.SliceData(m.wbuf))), uintptr(len(m.wbuf)))
	if e == unix.EAGAIN || e == unix.EINTR {
		return false
	}
	m.werr = e
	return true
}

// ReadFrame reads one frame. Errors are *os.PathError naming the
// device, as os.File's are; after Close, os.ErrClosed; an empty read,
// io.EOF, as os.File gives it.
func (m *FileMedium) ReadFrame(b []byte) (int, error) {
	m.rbuf = b
	err := m.rc.Read(m.rfn)
	m.rbuf = nil
	switch {
	case err != nil:
		return 0, m.pathErr("read", err)
	case m.rerr != 0:
		return 0, m.pathErr("read", m.rerr)
	case m.rn == 0 && len(b) > 0:
		return 0, io.EOF
	}
	return m.rn, nil
}

// WriteFrame sends one frame.
func (m *FileMedium) WriteFrame(b []byte) error {
	m.wmu.Lock()
	defer m.wmu.Unlock()
	m.wbuf = b
	err := m.rc.Write(m.wfn)
	m.wbuf = nil
	switch {
	case err != nil:
		return m.pathErr("write", err)
	case m.werr != 0:
		return m.pathErr("write", m.werr)
	}
	return nil
}

// pathErr names the device in err, as os.File does; after Close,
// os.ErrClosed (the poller's own error for it is not exported).
func (m *FileMedium) pathErr(op string, err error) error {
	if m.closed.Load() {
		err = os.ErrClosed
	}
	return &os.PathError{Op: op, Path: m.f.Name(), Err: err}
}

// Close closes the descriptor, waking the reader; closing twice is not
// an error.
func (m *FileMedium) Close() error {
	m.closed.Store(true)
	if err := m.f.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
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
