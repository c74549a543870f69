package frct

import (
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/ouro-net/ouro/lib/clock"
	"github.com/ouro-net/ouro/lib/memlink"
)

func writerBlocked(c *Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writerBlocked
}

func TestSlowReaderBlocksWriterUntilDeadline(t *testing.T) {
	leakCheck(t)
	fc := clock.NewFake(time.Unix(1000, 0))
	cfg := virtualCfg(fc)
	cfg.Window = 32
	cfg.MaxMessage = 64 << 10
	a, b, _, _ := newPair(t, cfg, memlink.Config{Clock: fc})
	a.SetWriteDeadline(fc.Now().Add(time.Second))

	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	go func() {
		msg := make([]byte, 10<<10)
		total := 0
		for {
			n, err := a.Write(msg)
			total += n
			if err != nil {
				done <- result{total, err}
				return
			}
		}
	}()
	eventually(t, "the writer to block", func() bool { return writerBlocked(a) })
	fc.Advance(cfg.DelayedACK) // flush delayed ACKs; the writer stays blocked
	eventually(t, "the writer to block again", func() bool { return writerBlocked(a) })
	select {
	case r := <-done:
		t.Fatalf("Write returned before the deadline: %+v", r)
	default:
	}

	maxPkts := (1500 - HeaderLen) // memlink default MTU
	msgPkts := (cfg.MaxMessage + maxPkts - 1) / maxPkts
	bound := cfg.Window + msgPkts + cfg.ReorderBuffer
	if sb, sa := b.Stats(), a.Stats(); sb.Buffered > bound || sa.Unacked > cfg.Window {
		t.Fatalf("memory not bounded: receiver buffers %d packets (bound %d), sender keeps %d", sb.Buffered, bound, sa.Unacked)
	}

	fc.Advance(time.Second) // past the write deadline
	r := <-done
	if !errors.Is(r.err, os.ErrDeadlineExceeded) {
		t.Fatalf("Write error %v, want deadline exceeded", r.err)
	}
	if limit := (bound + cfg.Window) * maxPkts; r.n > limit {
		t.Fatalf("writer got %d bytes accepted, more than the windows allow (%d)", r.n, limit)
	}
	if sb := b.Stats(); sb.Buffered > bound {
		t.Fatalf("receiver buffers %d packets after the deadline (bound %d)", sb.Buffered, bound)
	}

	// Reading everything reopens the window and writing works again. The
	// message cut by the deadline is complete once the next one starts.
	a.SetWriteDeadline(time.Time{})
	more := make(chan error, 1)
	go func() {
		_, err := a.Write([]byte("more"))
		more <- err
	}()
	got := 0
	buf := make([]byte, 64<<10)
	for got < r.n {
		n, err := b.Read(buf)
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		got += n
	}
	if got != r.n {
		t.Fatalf("read %d bytes, writer reported %d", got, r.n)
	}
	if err := <-more; err != nil {
		t.Fatalf("Write after the reader caught up: %v", err)
	}
	if n, err := b.Read(buf); err != nil || string(buf[:n]) != "more" {
		t.Fatalf("Read = %q, %v", buf[:n], err)
	}
}

// TestZeroWindowProbeRecoversLostUpdate: a lost window update cannot
// stall a sender for good, whether the writer waits in Write (no send
// buffer) or its messages wait in the send buffer.
func TestZeroWindowProbeRecoversLostUpdate(t *testing.T) {
	for _, sb := range []int{-1, 0} {
		t.Run(fmt.Sprintf("SendBuffer=%d", sb), func(t *testing.T) { testZeroWindowProbe(t, sb) })
	}
}

func testZeroWindowProbe(t *testing.T, sendBuffer int) {
	leakCheck(t)
	fc := clock.NewFake(time.Unix(1000, 0))
	cfg := virtualCfg(fc)
	cfg.Window = 8
	cfg.SendBuffer = sendBuffer
	cfg.NoDelay = true // each message its own packet, so that they fill the window
	a, b, la, _ := newPair(t, cfg, memlink.Config{Clock: fc})
	waiting := func() bool {
		if sendBuffer < 0 {
			return writerBlocked(a)
		}
		return a.Stats().SendBuffered == 20-cfg.Window
	}

	wrote := make(chan error, 1)
	go func() {
		for i := 0; i < 20; i++ {
			if _, err := a.Write([]byte{byte(i)}); err != nil {
				wrote <- err
				return
			}
		}
		wrote <- nil
	}()
	eventually(t, "zero window", func() bool {
		return waiting() && a.Stats().Unacked == 0 && b.Stats().Buffered == cfg.Window
	})

	la.Cut() // the window update the reads trigger is lost
	buf := make([]byte, 10)
	for i := 0; i < cfg.Window; i++ {
		if n, err := b.Read(buf); n != 1 || err != nil || buf[0] != byte(i) {
			t.Fatalf("Read %d = %d %v %v", i, n, err, buf[:n])
		}
	}
	la.Restore()
	if !waiting() {
		t.Fatal("writer unblocked without a window update")
	}
	probes := a.Stats().KeepAlivesSent
	for i := cfg.Window; i < 20; i++ {
		ch := make(chan int, 1)
		go func() {
			n, _ := b.Read(buf)
			ch <- n
		}()
		for got := false; !got; {
			select {
			case <-ch:
				got = true
			default:
				fc.Advance(10 * time.Millisecond) // persist timer, delayed ACKs
				time.Sleep(time.Millisecond)
			}
		}
		if buf[0] != byte(i) {
			t.Fatalf("message %d is %d", i, buf[0])
		}
	}
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	if a.Stats().KeepAlivesSent == probes {
		t.Fatal("no zero-window probe was sent")
	}
}
