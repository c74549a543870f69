package udp

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
	"time"
)

// TestReceiverBatchFollowsLoad: the receive batch holds one buffer
// while datagrams come one at a time, grows to rxBatch under a backlog
// (every datagram whole and in order), and goes back to one buffer
// after at most 2 x rxShrinkCalls quiet batches, or two rxShrinkAfter
// of (virtual) time with a few batches.
func TestReceiverBatchFollowsLoad(t *testing.T) {
	conn, _, _, err := listen("udp4", netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rc, err := conn.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	out, err := net.DialUDP("udp4", nil, conn.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	const size = 2048
	clock := time.Unix(1000, 0)
	r := newReceiver(size, func() time.Time { return clock })
	held := func() int {
		n := 0
		for _, b := range r.bufs {
			if b != nil {
				n++
			}
		}
		return n
	}
	seq := 0
	send := func() {
		b := bytes.Repeat([]byte{byte(seq)}, 100+seq%1000)
		seq++
		if _, err := out.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	got := 0
	read := func() {
		if err := rc.Read(r.fn); err != nil || r.errno != nil {
			t.Fatal(err, r.errno)
		}
		for i := 0; i < r.n; i++ {
			b, _, trunc := r.datagram(i)
			if trunc || len(b) != 100+got%1000 || b[0] != byte(got) || b[len(b)-1] != byte(got) {
				t.Fatalf("datagram %d: %d bytes (truncated %v), want %d", got, len(b), trunc, 100+got%1000)
			}
			got++
		}
		r.adapt()
	}
	// runDry is the receive loop finding the socket empty.
	runDry := func() {
		rc.Control(func(fd uintptr) {
			if r.recv(fd) {
				t.Fatal("a datagram where none was sent")
			}
		})
	}
	// One at a time: one buffer.
	for range 100 {
		send()
		read()
		runDry()
	}
	if r.cur != 1 || held() != 1 {
		t.Fatalf("after datagrams one at a time: batch %d, %d buffers held, want 1 and 1", r.cur, held())
	}
	// A backlog: the batch grows to rxBatch.
	const burst = 200
	for range burst {
		send()
	}
	for want := got + burst; got < want; {
		read()
	}
	if r.cur != rxBatch || held() != rxBatch {
		t.Fatalf("after a backlog of %d: batch %d, %d buffers held, want %d", burst, r.cur, held(), rxBatch)
	}
	// Quiet again: back to one buffer within two rxShrinkCalls windows
	// (the window the backlog ended in still counts its peak).
	for range 2 * rxShrinkCalls {
		send()
		read()
		runDry()
	}
	if r.cur != 1 || held() != 1 {
		t.Fatalf("after %d quiet batches: batch %d, %d buffers held, want 1 and 1", 2*rxShrinkCalls, r.cur, held())
	}
	// Another backlog, then a quiet spell of few batches: cut back
	// once two windows of rxShrinkAfter have passed.
	for range burst {
		send()
	}
	for want := got + burst; got < want; {
		read()
	}
	if r.cur != rxBatch {
		t.Fatalf("after the second backlog: batch %d, want %d", r.cur, rxBatch)
	}
	for range 2 {
		clock = clock.Add(rxShrinkAfter)
		send()
		read()
		runDry()
	}
	if r.cur != 1 || held() != 1 {
		t.Fatalf("after 2 x %v with few batches: batch %d, %d buffers held, want 1 and 1", rxShrinkAfter, r.cur, held())
	}
}
