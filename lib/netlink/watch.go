package netlink

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// rcvBuf is the socket buffer asked for: link storms (many interfaces
// changing at once) should not overrun it.
const rcvBuf = 1 << 20

// Watcher follows the link state of one interface. Create it with Watch;
// Close stops it.
type Watcher struct {
	index    int
	f        *os.File
	onChange func(Link)
	onError  func(error)
	done     chan struct{}

	mu      sync.Mutex
	last    Link
	known   bool
	closing bool
}

// Watch starts watching interface index in the network namespace of the
// calling thread. onChange is called from the watcher's goroutine with
// the current state once, then whenever Link.Carrier changes; onError
// (may be nil) hears of socket errors the watcher cannot recover from
// alone (it keeps trying).
func Watch(index int, onChange func(Link), onError func(error)) (*Watcher, error) {
	if index <= 0 {
		return nil, fmt.Errorf("netlink watch: bad interface index %d", index)
	}
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink watch: socket: %w", err)
	}
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvBuf) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rcvBuf)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: unix.RTMGRP_LINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netlink watch: bind RTMGRP_LINK: %w", err)
	}
	// A non-blocking descriptor goes through the runtime poller, so
	// Close unblocks the reader.
	w := &Watcher{index: index, f: os.NewFile(uintptr(fd), "netlink"), onChange: onChange, onError: onError,
		done: make(chan struct{})}
	if err := w.request(); err != nil {
		w.f.Close()
		return nil, err
	}
	go w.run()
	return w, nil
}

// request asks the kernel for the interface's current state.
func (w *Watcher) request() error {
	b := make([]byte, nlmsgHdrLen+ifinfomsgLen)
	ne := binary.NativeEndian
	ne.PutUint32(b[0:4], uint32(len(b)))
	ne.PutUint16(b[4:6], unix.RTM_GETLINK)
	ne.PutUint16(b[6:8], unix.NLM_F_REQUEST)
	b[nlmsgHdrLen] = unix.AF_UNSPEC
	ne.PutUint32(b[nlmsgHdrLen+4:nlmsgHdrLen+8], uint32(int32(w.index)))
	if _, err := w.f.Write(b); err != nil {
		return fmt.Errorf("netlink watch: RTM_GETLINK for index %d: %w", w.index, err)
	}
	return nil
}

func (w *Watcher) run() {
	defer close(w.done)
	buf := make([]byte, 1<<16)
	for {
		n, err := w.f.Read(buf)
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return
			}
			if errors.Is(err, unix.ENOBUFS) {
				// Notifications were lost: ask again.
				if err := w.request(); err != nil {
					w.fail(err)
				}
				continue
			}
			if errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN) {
				continue
			}
			w.fail(fmt.Errorf("netlink watch: read: %w", err))
			return
		}
		perr := Parse(buf[:n], w.update)
		var ee *ErrnoError
		switch {
		case errors.As(perr, &ee) && ee.Errno == unix.ENODEV:
			// The answer to our request: the interface is gone.
			w.update(Link{Index: w.index, Deleted: true})
		case perr != nil:
			w.fail(perr)
		}
	}
}

func (w *Watcher) fail(err error) {
	w.mu.Lock()
	closing := w.closing
	w.mu.Unlock()
	if w.onError != nil && !closing {
		w.onError(err)
	}
}

func (w *Watcher) update(l Link) {
	if l.Index != w.index {
		return
	}
	w.mu.Lock()
	if l.Name == "" {
		l.Name = w.last.Name
	}
	changed := !w.known || w.last.Carrier() != l.Carrier()
	w.last, w.known = l, true
	w.mu.Unlock()
	if changed && w.onChange != nil {
		w.onChange(l)
	}
}

// Link returns the last state seen, and whether any was seen yet.
func (w *Watcher) Link() (Link, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last, w.known
}

// Close stops the watcher and waits for its goroutine; onChange is not
// called after Close returns.
func (w *Watcher) Close() error {
	w.mu.Lock()
	w.closing = true
	w.mu.Unlock()
	err := w.f.Close()
	<-w.done
	return err
}
