package flow

import (
	"errors"
	"io"
	"time"

	"github.com/ouro-net/ouro/lib/pipe"
)

// Direct data path.
//
// A shim IPCP whose medium allows it (udp4, udp6) may hand the
// application a connected socket that reaches the peer application's
// socket: a Direct record on the flow's channel carries it. From then
// on packets go through that socket, one record per datagram, and no
// longer cross the IPCP process; the channel to the IPCP carries only
// deallocation and path events, read by a watcher goroutine that wakes
// a blocked Read when the flow ends. Nothing changes for the caller.

// data returns where the flow's packets go: the data socket once the
// IPCP handed one over, else the channel to the IPCP.
func (f *Flow) data() *pipe.Pipe {
	if dp := f.dp.Load(); dp != nil {
		return dp
	}
	return f.p
}

// setForwarding makes the flow's data socket, now or when it comes,
// make raw system calls (WithForwarding).
func (f *Flow) setForwarding() {
	f.dmu.Lock()
	defer f.dmu.Unlock()
	f.fwd = true
	if dp := f.dp.Load(); dp != nil {
		dp.SetRawCalls(true)
	}
}

// goDirect takes the data socket of the Direct record just read and
// starts the watcher; without a usable socket the flow carries on
// through its IPCP.
func (f *Flow) goDirect() {
	file := f.p.TakeFile()
	if file == nil || f.dp.Load() != nil {
		if file != nil {
			file.Close()
		}
		return
	}
	dp, err := pipe.NewDatagram(file)
	if err != nil {
		return
	}
	f.dmu.Lock()
	dp.SetRawCalls(f.fwd)
	dp.SetReadDeadline(f.rdl)
	dp.SetWriteDeadline(f.wdl)
	f.p.SetReadDeadline(time.Time{})
	f.dp.Store(dp)
	f.dmu.Unlock()
	go f.watch(dp)
}

// watch reads the channel to the IPCP once data goes direct, until the
// flow ends: a deallocation or the IPCP's death wakes the reader, path
// events update the state. It returns when the flow is closed.
func (f *Flow) watch(dp *pipe.Pipe) {
	buf := make([]byte, 64)
	for {
		_, k, err := f.p.Read(buf)
		if err != nil && !errors.Is(err, io.ErrShortBuffer) {
			if f.closed.Load() {
				return
			}
			f.gone.Store(true)
			f.setState(pipe.Down)
			dp.SetReadDeadline(time.Unix(1, 0))
			return
		}
		switch k {
		case pipe.Dealloc:
			f.eof.Store(true)
			dp.SetReadDeadline(time.Unix(1, 0))
			return
		case pipe.Down, pipe.Up:
			f.setState(k)
		}
	}
}

// ended returns the error that ends a direct flow's reads, if it ended:
// io.EOF after the peer's deallocation (once the data that came before
// it is read), ErrDown once the IPCP is gone.
func (f *Flow) ended(dp *pipe.Pipe) error {
	switch {
	case f.gone.Load():
		return ErrDown
	case f.eof.Load() && dp.Pending() == 0:
		return io.EOF
	}
	return nil
}

// readDirect reads one packet from the data socket.
func (f *Flow) readDirect(dp *pipe.Pipe, b []byte) (int, error) {
	for {
		if err := f.drainOrEnd(dp); err != nil {
			return 0, err
		}
		n, k, err := dp.Read(b)
		if err != nil && !errors.Is(err, io.ErrShortBuffer) {
			if end := f.ended(dp); end != nil {
				return 0, end
			}
			if f.eof.Load() {
				continue // woken by the deallocation; data is still queued
			}
			return 0, f.mapErr(err)
		}
		if k == pipe.Data {
			return n, err
		}
	}
}

// readBatchDirect is ReadBatch on the data socket.
func (f *Flow) readBatchDirect(dp *pipe.Pipe, bufs [][]byte, sizes []int) (int, error) {
	var kinds [pipe.MaxBatch]pipe.Kind
	for {
		if err := f.drainOrEnd(dp); err != nil {
			return 0, err
		}
		n, err := dp.ReadBatch(bufs, sizes, kinds[:])
		if err != nil {
			if end := f.ended(dp); end != nil {
				return 0, end
			}
			if f.eof.Load() {
				continue
			}
			return 0, f.mapErr(err)
		}
		got := 0
		for i := 0; i < n; i++ {
			if kinds[i] != pipe.Data {
				continue
			}
			if got != i {
				if sizes[i] >= 0 {
					copy(bufs[got], bufs[i][:sizes[i]])
				}
				sizes[got] = sizes[i]
			}
			got++
		}
		if got > 0 {
			return got, nil
		}
	}
}

// drainOrEnd returns the error that ends the flow's reads, if any; once
// the flow is deallocated with packets still queued, it lifts the read
// deadline the watcher set so that they can be read first.
func (f *Flow) drainOrEnd(dp *pipe.Pipe) error {
	if err := f.ended(dp); err != nil {
		return err
	}
	if f.eof.Load() {
		dp.SetReadDeadline(time.Time{})
	}
	return nil
}
