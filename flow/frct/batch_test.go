package frct

import (
	"bytes"
	"crypto/sha256"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ouro-net/ouro/lib/memlink"
)

// batchEnd makes a memlink end a BatchLower: ReadPackets waits for one
// packet, then takes what else is queued; WritePackets writes one by
// one. It also counts the calls.
type batchEnd struct {
	*memlink.End
	reads, writes, written atomic.Int64 // the reader, a writer and the pacer may write at once
}

func (b *batchEnd) ReadPackets(bufs [][]byte, sizes []int, ce []bool) (int, error) {
	n := 0
	for n < len(bufs) && (n == 0 || b.Queued() > 0) {
		k, err := b.ReadPacket(bufs[n])
		switch {
		case err == io.ErrShortBuffer:
			k = -1
		case err != nil:
			if n > 0 {
				return n, nil
			}
			return 0, err
		}
		sizes[n], ce[n] = k, false
		n++
	}
	b.reads.Add(1)
	return n, nil
}

func (b *batchEnd) WritePackets(bufs [][]byte) (int, error) {
	b.writes.Add(1)
	for i, p := range bufs {
		if err := b.WritePacket(p); err != nil {
			return i, err
		}
		b.written.Add(1)
	}
	return len(bufs), nil
}

// TestBatchStretchACKs: a receiver that reads 32 in-order packets in
// one batch acknowledges them with one ACK per ackEvery packets, not
// one per two, and the sender, told all of it, releases its window.
func TestBatchStretchACKs(t *testing.T) {
	la, lb := memlink.NewPair(memlink.Config{QueueLen: 256})
	cfg := fastCfg()
	cfg.Congestion = CongestionOff // 32 packets at once, no initial window
	cfg.NoDelay = true             // and each Write its own packet
	snd, err := New(la, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer snd.Close()
	rcvEnd := &batchEnd{End: lb}
	rcv, err := newConn(rcvEnd, cfg) // not started: the test is its reader
	if err != nil {
		t.Fatal(err)
	}
	close(rcv.readerDone) // no reader goroutine
	defer func() {
		rcv.cfg.Linger = -1
		rcv.Close()
	}()
	const n = 32
	for i := 0; i < n; i++ {
		if _, err := snd.Write([]byte{byte(i), 1, 2, 3}); err != nil {
			t.Fatal(err)
		}
	}
	bufs := make([]*[]byte, n)
	sizes := make([]int, n)
	ce := make([]bool, n)
	for i := range bufs {
		bufs[i] = rcv.getBuf()
		k, err := lb.ReadPacket(*bufs[i])
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		sizes[i] = k
	}
	var out outbox
	rcv.mu.Lock()
	rcv.handleBatchLocked(bufs, sizes, ce, &out)
	rcv.mu.Unlock()
	acks := len(out.pkts)
	if acks == 0 || acks > n/8 {
		t.Errorf("%d packets in one batch: %d ACKs, want 1 to %d (at least 8 packets an ACK)", n, acks, n/8)
	}
	rcv.flush(&out)
	if rcvEnd.writes.Load() != 1 || rcvEnd.written.Load() != int64(acks) {
		t.Errorf("the batch's ACKs went out in %d calls (%d packets), want 1 call", rcvEnd.writes.Load(), rcvEnd.written.Load())
	}
	eventually(t, "the sender's window released", func() bool {
		snd.mu.Lock()
		defer snd.mu.Unlock()
		return snd.sndUna == snd.sndNxt
	})
	for i := 0; i < n; i++ {
		b := make([]byte, 16)
		k, err := rcv.Read(b)
		if err != nil || k != 4 || b[0] != byte(i) {
			t.Fatalf("message %d: %v %x", i, err, b[:k])
		}
	}
}

// TestBatchLowerTransfer moves 2 MiB over lossy, reordering batch
// lowers in both directions: every byte arrives, in order, and the
// reads came in batches.
func TestBatchLowerTransfer(t *testing.T) {
	leakCheck(t)
	la, lb := memlink.NewPair(memlink.Config{Loss: 0.05, Reorder: 0.02, Seed: 7, QueueLen: 1024})
	ea, eb := &batchEnd{End: la}, &batchEnd{End: lb}
	a, err := New(ea, fastCfg())
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(eb, fastCfg())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	data := make([]byte, 2<<20)
	for i := range data {
		data[i] = byte(i*7 + i>>11)
	}
	got := make(chan []byte, 1)
	go func() {
		all, _ := io.ReadAll(b)
		got <- all
	}()
	for off := 0; off < len(data); off += 1000 {
		if _, err := a.Write(data[off:min(off+1000, len(data))]); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	var all []byte
	select {
	case all = <-got:
	case <-time.After(30 * time.Second):
		t.Fatal("the reader never saw the end")
	}
	if !bytes.Equal(all, data) {
		t.Fatalf("got %d bytes (sha %x), want %d (sha %x)", len(all), sha256.Sum256(all), len(data), sha256.Sum256(data))
	}
	sb := b.Stats()
	if sb.PacketsReceived <= uint64(eb.reads.Load()) {
		t.Errorf("receiver: %d packets in %d reads: never more than one per read", sb.PacketsReceived, eb.reads.Load())
	}
	if sb.PacketsSent*2 > sb.PacketsReceived {
		t.Errorf("receiver sent %d ACKs for %d packets: more than one per two", sb.PacketsSent, sb.PacketsReceived)
	}
	t.Logf("receiver: %d packets in %d reads, %d ACKs; sender: %d packets, %d retransmitted, %d writes", sb.PacketsReceived, eb.reads.Load(),
		sb.PacketsSent, a.Stats().PacketsSent, a.Stats().Retransmitted, ea.writes.Load())
}
