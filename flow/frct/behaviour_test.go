package frct

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/ouro-net/ouro/lib/clock"
	"github.com/ouro-net/ouro/lib/memlink"
)

func TestCloseUnblocksReadAndWrite(t *testing.T) {
	leakCheck(t)
	fc := clock.NewFake(time.Unix(0, 0))
	cfg := virtualCfg(fc)
	cfg.Window = 4
	cfg.Linger = time.Second
	a, _, _, _ := newPair(t, cfg, memlink.Config{Clock: fc})
	readErr, writeErr := make(chan error, 1), make(chan error, 1)
	go func() { // b never writes
		_, err := a.Read(make([]byte, 10))
		readErr <- err
	}()
	go func() { // b never reads
		for {
			if _, err := a.Write(make([]byte, 3000)); err != nil {
				writeErr <- err
				return
			}
		}
	}()
	eventually(t, "the writer to block", func() bool { return writerBlocked(a) })
	closed := make(chan error, 1)
	go func() { closed <- a.Close() }()
	if err := <-readErr; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Read after Close: %v", err)
	}
	if err := <-writeErr; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write after Close: %v", err)
	}
	// Close lingers on the virtual clock until its FIN is acknowledged.
	for done := false; !done; {
		select {
		case err := <-closed:
			if err != nil {
				t.Fatalf("Close: %v", err)
			}
			done = true
		default:
			fc.Advance(100 * time.Millisecond)
			time.Sleep(time.Millisecond)
		}
	}
}

func TestCloseWriteHalfCloses(t *testing.T) {
	leakCheck(t)
	a, b, _, _ := newPair(t, fastCfg(), memlink.Config{})
	if _, err := a.Write([]byte("question")); err != nil {
		t.Fatal(err)
	}
	if err := a.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if err := a.CloseWrite(); err != nil {
		t.Fatalf("second CloseWrite: %v", err)
	}
	if _, err := a.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write after CloseWrite: %v", err)
	}
	got, err := io.ReadAll(b)
	if err != nil || string(got) != "question" {
		t.Fatalf("ReadAll = %q, %v", got, err)
	}
	if _, err := b.Write([]byte("answer")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	if n, err := a.Read(buf); err != nil || string(buf[:n]) != "answer" {
		t.Fatalf("Read after CloseWrite = %q, %v", buf[:n], err)
	}
}

func TestLongWriteIsSplitAtMaxMessage(t *testing.T) {
	leakCheck(t)
	cfg := fastCfg()
	cfg.MaxMessage = 3000
	a, b, _, _ := newPair(t, cfg, memlink.Config{})
	msg := bytes.Repeat([]byte("0123456789"), 700)
	go func() {
		if n, err := a.Write(msg); n != len(msg) || err != nil {
			t.Errorf("Write = %d, %v", n, err)
		}
		a.Close()
	}()
	var sizes []int
	var all []byte
	buf := make([]byte, 1<<16)
	for {
		n, err := b.Read(buf)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, n)
		all = append(all, buf[:n]...)
	}
	if fmt.Sprint(sizes) != "[3000 3000 1000]" || !bytes.Equal(all, msg) {
		t.Fatalf("messages %v, intact %v", sizes, bytes.Equal(all, msg))
	}
}

func TestSequenceNumbersWrap(t *testing.T) {
	leakCheck(t)
	la, lb := memlink.NewPair(lossy(77))
	var cs [2]*Conn
	for i, l := range []*memlink.End{la, lb} {
		c, err := newConn(l, fastCfg())
		if err != nil {
			t.Fatal(err)
		}
		c.setISN(^uint32(0) - 100)
		c.start()
		cs[i] = c
		defer c.Close()
	}
	w := newWorkload(8, 1<<20)
	go w.send(t, cs[0], false)
	sizes, sum, _ := readMessages(t, cs[1])
	if fmt.Sprint(sizes) != fmt.Sprint(w.sizes()) || sum != w.sum {
		t.Fatal("stream across the sequence wrap differs")
	}
	cs[0].mu.Lock()
	defer cs[0].mu.Unlock()
	if cs[0].sndNxt > 1<<30 {
		t.Fatalf("sequence did not wrap: %d", cs[0].sndNxt)
	}
}

func TestUnreliableIsSequenced(t *testing.T) {
	leakCheck(t)
	cfg := Config{RTOMin: time.Millisecond, InitialRTO: 10 * time.Millisecond}
	a, b, _, _ := newPair(t, cfg, lossy(99))
	const n = 2000
	go func() {
		for i := 0; i < n; i++ {
			size := 4 + i%3000 // some messages span several packets
			m := bytes.Repeat([]byte{byte(i)}, size)
			copy(m, fmt.Sprintf("%04d", i%10000))
			if _, err := a.Write(m); err != nil {
				t.Errorf("Write: %v", err)
				return
			}
			if i%50 == 0 {
				time.Sleep(time.Millisecond) // let the unpaced writer breathe
			}
		}
		a.Close()
	}()
	buf := make([]byte, 1<<16)
	last, got := -1, 0
	for {
		k, err := b.Read(buf)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		var i int
		fmt.Sscanf(string(buf[:4]), "%04d", &i)
		if i <= last {
			t.Fatalf("message %d after %d: duplicate or out of order", i, last)
		}
		if want := 4 + i%3000; k != want || !bytes.Equal(buf[4:k], bytes.Repeat([]byte{byte(i)}, k-4)) {
			t.Fatalf("message %d damaged: %d bytes, want %d", i, k, want)
		}
		last = i
		got++
	}
	if got < n/2 {
		t.Fatalf("only %d of %d messages arrived over a 5%% lossy link", got, n)
	}
	if s := a.Stats(); s.Retransmitted > 10 {
		t.Fatalf("unreliable connection retransmitted %d packets", s.Retransmitted)
	}
}

// TestCloseReportsUnacknowledgedData cuts the link under unacknowledged
// data: Close must give up after Linger and say so (ErrUnacked), never
// return nil as if the peer had everything.
func TestCloseReportsUnacknowledgedData(t *testing.T) {
	leakCheck(t)
	cfg := fastCfg()
	cfg.Linger = 200 * time.Millisecond
	cfg.PeerTimeout = time.Minute
	a, _, la, _ := newPair(t, cfg, memlink.Config{})
	la.Cut()
	if _, err := a.Write([]byte("never delivered")); err != nil {
		t.Fatal(err)
	}
	err := a.Close()
	if !errors.Is(err, ErrUnacked) {
		t.Fatalf("Close with unacknowledged data: %v, want ErrUnacked", err)
	}
}
