package unicast_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/ouro-net/ouro/flow"
	"github.com/ouro-net/ouro/lib/qos"
)

// TestReliableTransferAcrossCut sends a large stream over a reliable
// flow from A to D across the dual-homed square and cuts A's active link
// in the middle: the application must see every byte, in order, intact.
func TestReliableTransferAcrossCut(t *testing.T) {
	const size = 100 << 20
	tp := dualHomedSquare(t)
	if show, err := tp.WaitRoute("a", "d", 2, 20*time.Second); err != nil {
		t.Fatalf("%v\n%s", err, show)
	}
	l := listenAt(t, tp, "d", "sink", "a")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	type result struct {
		n   int64
		sum []byte
		err error
	}
	got := make(chan result, 1)
	go func() {
		g, err := l.Accept(ctx)
		if err != nil {
			got <- result{err: err}
			return
		}
		defer g.Close()
		h := sha256.New()
		n, err := io.Copy(h, g)
		got <- result{n, h.Sum(nil), err}
	}()

	f, err := flow.Alloc(ctx, "sink", qos.Reliable(), tp.Hosts["a"].Opt())
	if err != nil {
		t.Fatal(err)
	}
	_, before, _ := tp.ActivePeer("a", []string{"b", "c"}, nil)
	src := rand.NewChaCha8([32]byte{1, 2, 3})
	sum := sha256.New()
	chunk := make([]byte, 64<<10)
	start := time.Now()
	var sent int64
	cut := false
	for sent < size {
		src.Read(chunk)
		sum.Write(chunk)
		if _, err := f.Write(chunk); err != nil {
			t.Fatalf("write after %d bytes: %v", sent, err)
		}
		sent += int64(len(chunk))
		if !cut && sent >= size/2 {
			peer, _, err := tp.ActivePeer("a", []string{"b", "c"}, before)
			if err != nil {
				t.Fatal(err)
			}
			pid, err := tp.Cut("a", peer, false)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("cut A's link to %s (killed pid %d) after %d MiB", peer, pid, sent>>20)
			cut = true
		}
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	r := <-got
	elapsed := time.Since(start)
	if r.err != nil {
		t.Fatalf("receiver: %v after %d bytes", r.err, r.n)
	}
	if r.n != size || !bytes.Equal(r.sum, sum.Sum(nil)) {
		t.Fatalf("received %d of %d bytes, checksum match %v", r.n, size, bytes.Equal(r.sum, sum.Sum(nil)))
	}
	st := f.Reliability()
	t.Logf("%d MiB across the cut in %v (%.1f MB/s), checksum match; retransmitted %d packets",
		size>>20, elapsed.Round(time.Millisecond), float64(size)/elapsed.Seconds()/1e6, st.Retransmitted)
}
