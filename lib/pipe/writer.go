package pipe

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// DatagramWriter writes Data records to a UDP data socket that another
// process reads: an IPCP's copy of a flow's data socket after it handed
// the socket to the application. Unlike a Pipe it never registers the
// descriptor with the runtime's poller. A descriptor in the poller wakes
// its process at every datagram that arrives on the socket (epoll is
// edge-triggered on readability, whoever reads it), so an IPCP holding a
// Pipe on each direct flow's socket was woken for every packet the
// application received, though it never reads them. A full socket
// buffer is waited out with poll(2) on the descriptor alone.
type DatagramWriter struct {
	mu     sync.Mutex // one batch at a time; Close waits for it
	fd     int
	closed atomic.Bool
	b      batch
}

// writerWait is how long one poll(2) for room waits, and writerPolls
// how many a batch may take before it gives up: a peer that does not
// drain its socket costs the writer at most a second.
const (
	writerWait  = 100 // ms
	writerPolls = 10
)

// ErrWriterClosed is returned by a DatagramWriter's WriteBatch after
// Close.
var ErrWriterClosed = errors.New("pipe: data socket writer closed")

// NewDatagramWriter takes fd, a connected non-blocking UDP socket, and
// closes it on Close.
func NewDatagramWriter(fd int) (*DatagramWriter, error) {
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return nil, fmt.Errorf("data socket: %w", err)
	}
	if typ != unix.SOCK_DGRAM {
		return nil, fmt.Errorf("data socket: type %d, want a datagram socket", typ)
	}
	w := &DatagramWriter{fd: fd}
	w.b.init()
	return w, nil
}

// WriteBatch writes each of bufs as one Data record, one datagram each,
// and returns how many it wrote. A packet the peer's socket refused
// (ECONNREFUSED: it is gone) counts as written and lost, as on a Pipe.
func (w *DatagramWriter) WriteBatch(bufs [][]byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	b := &w.b
	sent, polls := 0, 0
	for sent < len(bufs) {
		if w.closed.Load() {
			return sent, ErrWriterClosed
		}
		n := min(len(bufs)-sent, MaxBatch)
		for i := 0; i < n; i++ {
			b.kinds[i] = byte(Data)
			b.set(i, bufs[sent+i])
		}
		b.n = n
		got, _, e := unix.RawSyscall6(unix.SYS_SENDMMSG, uintptr(w.fd), uintptr(unsafe.Pointer(&b.hdrs[0])), uintptr(n), unix.MSG_NOSIGNAL|unix.MSG_DONTWAIT, 0, 0)
		b.clear()
		switch e {
		case 0:
			sent += int(got)
		case unix.EINTR:
		case unix.ECONNREFUSED:
			sent++
		case unix.EAGAIN:
			if polls++; polls > writerPolls {
				return sent, fmt.Errorf("data socket: %w", unix.EAGAIN)
			}
			fds := []unix.PollFd{{Fd: int32(w.fd), Events: unix.POLLOUT}}
			if _, err := unix.Poll(fds, writerWait); err != nil && !errors.Is(err, unix.EINTR) {
				return sent, fmt.Errorf("data socket: poll: %w", err)
			}
		default:
			return sent, fmt.Errorf("data socket: %w", e)
		}
	}
	return sent, nil
}

// Close closes the socket, once a batch in progress has returned (at
// most one poll later); later calls do nothing.
func (w *DatagramWriter) Close() error {
	if w.closed.Swap(true) {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return unix.Close(w.fd)
}
