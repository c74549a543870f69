package memlink

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/ouro-net/ouro/lib/clock"
)

func mustWrite(t *testing.T, e *End, p []byte) {
	t.Helper()
	if err := e.WritePacket(p); err != nil {
		t.Fatalf("WritePacket: %v", err)
	}
}

func mustRead(t *testing.T, e *End) []byte {
	t.Helper()
	b := make([]byte, e.MTU())
	n, err := e.ReadPacket(b)
	if err != nil {
		t.Fatalf("ReadPacket: %v", err)
	}
	return b[:n]
}

func TestPerfectLinkKeepsPacketsAndBoundaries(t *testing.T) {
	a, b := NewPair(Config{})
	defer a.Close()
	defer b.Close()
	if a.MTU() != DefaultMTU {
		t.Fatalf("MTU = %d", a.MTU())
	}
	buf := []byte("hello")
	mustWrite(t, a, buf)
	buf[0] = 'j' // WritePacket must have copied
	mustWrite(t, a, []byte("world!"))
	mustWrite(t, b, []byte("back"))
	if got := mustRead(t, b); string(got) != "hello" {
		t.Fatalf("got %q", got)
	}
	if got := mustRead(t, b); string(got) != "world!" {
		t.Fatalf("got %q", got)
	}
	if got := mustRead(t, a); string(got) != "back" {
		t.Fatalf("got %q", got)
	}
	if s := a.Stats(); s.Sent != 2 || s.Delivered != 2 || s.Dropped() != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestMTUAndShortBuffer(t *testing.T) {
	a, b := NewPair(Config{MTU: 10})
	defer a.Close()
	defer b.Close()
	if err := a.WritePacket(make([]byte, 11)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversize write: %v", err)
	}
	mustWrite(t, a, []byte("0123456789"))
	small := make([]byte, 4)
	n, err := b.ReadPacket(small)
	if n != 4 || !errors.Is(err, io.ErrShortBuffer) || string(small) != "0123" {
		t.Fatalf("short read = %d %v %q", n, err, small)
	}
}

func TestInvalidConfigPanics(t *testing.T) {
	for _, c := range []Config{{Loss: -0.1}, {Dup: 1.5}, {Delay: -1}, {QueueLen: -1}, {MTU: -1}, {ReorderHold: -1}} {
		if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Fatalf("%+v: Validate = %v", c, err)
		}
		func() {
			defer func() {
				if recover() == nil {
					t.Fatalf("%+v: NewPair did not panic", c)
				}
			}()
			NewPair(c)
		}()
	}
}

func TestLossIsSeededAndCounted(t *testing.T) {
	run := func() (Stats, int) {
		a, b := NewPair(Config{Loss: 0.3, Seed: 7})
		defer a.Close()
		defer b.Close()
		for i := 0; i < 1000; i++ {
			mustWrite(t, a, []byte{byte(i)})
		}
		return a.Stats(), b.Queued()
	}
	s1, q1 := run()
	s2, q2 := run()
	if s1 != s2 || q1 != q2 {
		t.Fatalf("not deterministic: %+v/%d vs %+v/%d", s1, q1, s2, q2)
	}
	if s1.DroppedLoss < 200 || s1.DroppedLoss > 400 || uint64(q1)+s1.DroppedLoss != 1000 {
		t.Fatalf("loss stats %+v queued %d", s1, q1)
	}
}

func TestDupDeliversTwice(t *testing.T) {
	a, b := NewPair(Config{Dup: 1})
	defer a.Close()
	defer b.Close()
	mustWrite(t, a, []byte("x"))
	if b.Queued() != 2 || a.Stats().Duplicated != 1 {
		t.Fatalf("queued %d stats %+v", b.Queued(), a.Stats())
	}
}

func TestReorderSwapsNeighbours(t *testing.T) {
	// A fake clock that never moves: the held packet waits for the next
	// one however slowly this loop runs (on the real clock the hold
	// released packet 0 alone on a loaded machine).
	a, b := NewPair(Config{Reorder: 1, Clock: clock.NewFake(time.Unix(0, 0))})
	defer a.Close()
	defer b.Close()
	for i := byte(0); i < 6; i++ {
		mustWrite(t, a, []byte{i})
	}
	var got []byte
	for i := 0; i < 6; i++ {
		got = append(got, mustRead(t, b)...)
	}
	if !bytes.Equal(got, []byte{1, 0, 3, 2, 5, 4}) {
		t.Fatalf("order %v", got)
	}
}

func TestReorderHoldReleasesOnClock(t *testing.T) {
	fc := clock.NewFake(time.Unix(0, 0))
	a, b := NewPair(Config{Reorder: 1, Clock: fc, ReorderHold: time.Millisecond})
	defer a.Close()
	defer b.Close()
	mustWrite(t, a, []byte("lonely"))
	if b.Queued() != 0 {
		t.Fatal("held packet delivered early")
	}
	fc.Advance(time.Millisecond)
	if b.Queued() != 1 {
		t.Fatal("held packet not released by the clock")
	}
}

func TestDelayUsesClockAndKeepsOrder(t *testing.T) {
	fc := clock.NewFake(time.Unix(0, 0))
	a, b := NewPair(Config{Delay: 10 * time.Millisecond, Clock: fc})
	defer a.Close()
	defer b.Close()
	mustWrite(t, a, []byte{1})
	fc.Advance(5 * time.Millisecond)
	mustWrite(t, a, []byte{2})
	fc.Advance(5*time.Millisecond - 1)
	if b.Queued() != 0 {
		t.Fatal("delivered before the delay")
	}
	fc.Advance(1)
	if b.Queued() != 1 {
		t.Fatalf("queued %d after first delay", b.Queued())
	}
	fc.Advance(5 * time.Millisecond)
	if b.Queued() != 2 {
		t.Fatalf("queued %d after second delay", b.Queued())
	}
	if mustRead(t, b)[0] != 1 || mustRead(t, b)[0] != 2 {
		t.Fatal("delay reordered packets")
	}
}

func TestQueueFullDrops(t *testing.T) {
	a, b := NewPair(Config{QueueLen: 3})
	defer a.Close()
	defer b.Close()
	for i := 0; i < 5; i++ {
		mustWrite(t, a, []byte{byte(i)})
	}
	if s := a.Stats(); s.DroppedQueueFull != 2 || b.Queued() != 3 {
		t.Fatalf("stats %+v queued %d", s, b.Queued())
	}
}

func TestCutAndRestore(t *testing.T) {
	fc := clock.NewFake(time.Unix(0, 0))
	a, b := NewPair(Config{Clock: fc, Delay: time.Millisecond})
	defer a.Close()
	defer b.Close()
	mustWrite(t, a, []byte("in flight"))
	a.Cut()
	mustWrite(t, a, []byte("cut"))
	mustWrite(t, b, []byte("cut too"))
	fc.Advance(time.Second)
	if a.Queued()+b.Queued() != 0 {
		t.Fatal("packets crossed a cut link")
	}
	if s := a.Stats(); s.DroppedCut != 2 {
		t.Fatalf("a stats %+v", s)
	}
	a.Restore()
	mustWrite(t, b, []byte("ok"))
	fc.Advance(time.Millisecond)
	if got := mustRead(t, a); string(got) != "ok" {
		t.Fatalf("got %q", got)
	}
}

func TestCloseUnblocksAndPeerDrainsToEOF(t *testing.T) {
	a, b := NewPair(Config{})
	errc := make(chan error, 1)
	go func() {
		_, err := a.ReadPacket(make([]byte, 10))
		errc <- err
	}()
	mustWrite(t, a, []byte("last"))
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("blocked read after Close: %v", err)
	}
	if err := a.WritePacket([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after Close: %v", err)
	}
	if err := b.WritePacket([]byte("x")); !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("write to closed peer: %v", err)
	}
	if got := mustRead(t, b); string(got) != "last" {
		t.Fatalf("got %q", got)
	}
	if _, err := b.ReadPacket(make([]byte, 10)); err != io.EOF {
		t.Fatalf("read after drain: %v", err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	b.Close()
}

func TestConcurrentUse(t *testing.T) {
	a, b := NewPair(Config{Loss: 0.1, Dup: 0.1, Reorder: 0.1, QueueLen: 100000})
	const writers, each = 4, 500
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				_ = a.WritePacket([]byte(fmt.Sprint(w, i)))
			}
		}(w)
	}
	var got sync.WaitGroup
	counts := make(chan int, 2)
	for r := 0; r < 2; r++ {
		got.Add(1)
		go func() {
			defer got.Done()
			n := 0
			buf := make([]byte, 100)
			for {
				if _, err := b.ReadPacket(buf); err != nil {
					counts <- n
					return
				}
				n++
			}
		}()
	}
	wg.Wait()
	a.Close()
	got.Wait()
	total := <-counts + <-counts
	s := a.Stats()
	if uint64(total) != s.Delivered || s.Sent != writers*each || s.Delivered+s.Dropped() != s.Sent+s.Duplicated {
		t.Fatalf("read %d, stats %+v", total, s)
	}
	b.Close()
}
