// Package shimtest holds what the tests of the shim media share: a
// flooder of allocation requests that speaks the engine's management
// messages (package wire) over whatever medium the test gives it, a
// burst of allocations, and an echoing acceptor.
package shimtest

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ouro-net/ouro/ipcpd/shim/wire"
	"github.com/ouro-net/ouro/lib/pipe"
)

// Medium is how a flooder reaches its victim: Send sends one encoded
// management message (the medium frames it) and returns the size of
// the frame, Recv blocks until the
// next management message for the flooder arrives and returns it
// unframed with the size of its frame (ok false when the medium is
// closed), Close unblocks Recv. The flooder never calls Send from two
// goroutines at once.
type Medium struct {
	Send  func(msg []byte) (frameLen int, err error)
	Recv  func() (msg []byte, frameLen int, ok bool)
	Close func()
}

// Flooder sends allocation requests (Req with a new eid each, from 1 up
// to MaxEID and round again) as fast as it can, pausing 1 ms every
// Burst requests so that the test is not starved, and reads what comes
// back; with confirm set it confirms every "ok", as an abusive
// requester with an IRMd would. The counters are bytes on the medium
// (Sent, Recvd) and answers.
type Flooder struct {
	Sent, Recvd       atomic.Uint64
	OKs, Busy, Others atomic.Uint64

	med    Medium
	sendMu sync.Mutex // serialises med.Send
	stop   chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
}

// Start starts a flooder; the test's cleanup halts it.
func Start(t testing.TB, med Medium, req wire.Msg, maxEID uint32, burst int, confirm bool) *Flooder {
	t.Helper()
	if req.Type != wire.AllocReq || maxEID == 0 || burst <= 0 {
		panic(fmt.Sprintf("shimtest: a flooder sends alloc requests to eids 1..max in bursts (%v, %d, %d)", req.Type, maxEID, burst))
	}
	fl := &Flooder{med: med, stop: make(chan struct{})}
	fl.wg.Add(2)
	go func() { // owned: until halt
		defer fl.wg.Done()
		var buf []byte
		for i, eid := 0, uint32(1); ; i, eid = i+1, eid%maxEID+1 {
			select {
			case <-fl.stop:
				return
			default:
			}
			req.Src = eid
			buf = req.Append(buf[:0])
			if n, err := fl.send(buf); err == nil {
				fl.Sent.Add(uint64(n))
			}
			if i%burst == burst-1 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	go func() { // owned: until halt closes the medium
		defer fl.wg.Done()
		var out []byte
		for {
			b, n, ok := med.Recv()
			if !ok {
				return
			}
			fl.Recvd.Add(uint64(n))
			var m wire.Msg
			if m.Decode(b) != nil || m.Type != wire.AllocResp {
				fl.Others.Add(1)
				continue
			}
			switch m.Status {
			case wire.OK:
				fl.OKs.Add(1)
				if confirm {
					c := wire.Msg{Type: wire.Confirm, Dst: m.Src, Src: m.Dst}
					out = c.Append(out[:0])
					fl.send(out)
				}
			case wire.Busy:
				fl.Busy.Add(1)
			}
		}
	}()
	t.Cleanup(fl.Halt)
	return fl
}

func (fl *Flooder) send(msg []byte) (int, error) {
	fl.sendMu.Lock()
	defer fl.sendMu.Unlock()
	return fl.med.Send(msg)
}

// Halt stops the flooder, closes its medium and waits for it.
func (fl *Flooder) Halt() {
	fl.once.Do(func() {
		close(fl.stop)
		fl.med.Close()
		fl.wg.Wait()
	})
}

// Amplified reports an error if the flooder got more bytes back than it
// sent.
func (fl *Flooder) Amplified() error {
	if fl.Recvd.Load() > fl.Sent.Load() {
		return fmt.Errorf("amplification: the flooder sent %d bytes, got %d back", fl.Sent.Load(), fl.Recvd.Load())
	}
	return nil
}

// String sums the flooder up for logs.
func (fl *Flooder) String() string {
	return fmt.Sprintf("sent %d B got %d B, %d ok %d busy", fl.Sent.Load(), fl.Recvd.Load(), fl.OKs.Load(), fl.Busy.Load())
}

// AllocBurst runs n allocations at once (alloc, each in its own
// goroutine) and fails the test if any fails.
func AllocBurst(t testing.TB, n int, alloc func() error) {
	t.Helper()
	errs := make(chan error, n)
	for range n {
		go func() { errs <- alloc() }()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatalf("allocation in a burst: %v", err)
		}
	}
}

// Echoer echoes the packets of every flow given to Serve until the
// flow ends (an application end of a shim flow: a direct data socket
// handed over is closed, the flooders never send there).
type Echoer struct{ wg sync.WaitGroup }

// Serve echoes p in a goroutine of its own, and closes p at the end.
func (e *Echoer) Serve(p *pipe.Pipe) {
	e.wg.Add(1)
	go func() { // owned: until p ends
		defer e.wg.Done()
		defer p.Close()
		buf := make([]byte, 70000)
		for {
			n, k, err := p.Read(buf)
			if err != nil || k == pipe.Dealloc {
				return
			}
			switch k {
			case pipe.Data:
				p.Write(buf[:n])
			case pipe.Direct:
				if f := p.TakeFile(); f != nil {
					f.Close()
				}
			}
		}
	}()
}

// Wait waits for every flow served to end.
func (e *Echoer) Wait() { e.wg.Wait() }

// Accept serves every flow that comes on ch (app gives its application
// end) with e until the stop it returns is called; stop waits for the
// accepting loop, Wait for the flows.
func Accept[T any](e *Echoer, ch <-chan T, app func(T) *pipe.Pipe) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() { // owned: until stop
		defer close(done)
		for {
			select {
			case x := <-ch:
				e.Serve(app(x))
			case <-quit:
				return
			}
		}
	}()
	return func() {
		close(quit)
		<-done
	}
}
