package unicast_test

import (
	"bytes"
	"context"
	"io"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ouro-net/ouro/flow"
	"github.com/ouro-net/ouro/internal/topo"
	"github.com/ouro-net/ouro/lib/qos"
)

// lossyPair builds A and B joined by one udp link whose shims drop pct
// percent of the packets of each lower flow at random (the loss drill):
// enrollment, the adjacency hello, routing and the directory all cross
// it.
func lossyPair(t *testing.T, pct int) *topo.Topo {
	t.Helper()
	tp := build(t, topo.Config{Hosts: []string{"a", "b"}, Links: [][2]string{{"b", "a"}}, PerLink: true,
		LowerParams: map[string]string{"loss": strconv.Itoa(pct)}})
	waitRoute(t, tp, "a", "b", 1)
	return tp
}

// TestAllocationOverLossyLink allocates flows across a link that loses
// 30% of its packets: each allocation request and answer may be lost,
// and every allocation must still succeed, by repetition.
func TestAllocationOverLossyLink(t *testing.T) {
	tp := lossyPair(t, 30)
	l := listenAt(t, tp, "b", "sink", "a")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var accepted atomic.Int64
	go func() {
		for {
			f, err := l.Accept(ctx)
			if err != nil {
				return
			}
			accepted.Add(1)
			f.Close()
		}
	}()
	const flows = 20
	for i := range flows {
		f, err := flow.Alloc(ctx, "sink", qos.Raw(), tp.Hosts["a"].Opt())
		if err != nil {
			show, _ := tp.Show("a")
			t.Fatalf("allocation %d of %d over a lossy link: %v\n%s", i+1, flows, err, show)
		}
		f.Close()
	}
	_, u := hostStatus(t, tp, "a")
	t.Logf("%d allocations over a link losing 30%% of packets: %d requests repeated", flows, u.Counters.FARepeated)
	if u.Counters.FARepeated == 0 {
		show, _ := tp.Show("a")
		t.Errorf("no request was repeated, yet the link lost 30%% of packets:\n%s", show)
	}
	// A repeated request never makes a second flow: B accepted exactly
	// one per allocation (a late duplicate would come within a few
	// repetition intervals).
	time.Sleep(time.Second)
	_, ub := hostStatus(t, tp, "b")
	t.Logf("B accepted %d flows; repeats answered %d", accepted.Load(), ub.Counters.FARepeatsAnswered)
	if n := accepted.Load(); n != flows {
		showB, _ := tp.Show("b")
		t.Errorf("B accepted %d flows for %d allocations: a repeated request made a second flow\n%s", n, flows, showB)
	}
}

// TestReliableOverLossyLink sends 2 MiB on a reliable flow across a link
// that loses 20% of its packets: the receiver gets every byte in order.
func TestReliableOverLossyLink(t *testing.T) {
	tp := lossyPair(t, 20)
	l := listenAt(t, tp, "b", "sink", "a")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	want := make([]byte, 2<<20)
	for i := range want {
		want[i] = byte(i*7 + i>>10)
	}
	got := make(chan []byte, 1)
	go func() {
		f, err := l.Accept(ctx)
		if err != nil {
			got <- nil
			return
		}
		defer f.Close()
		var b bytes.Buffer
		buf := make([]byte, 65536)
		for {
			n, err := f.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		got <- b.Bytes()
	}()
	f, err := flow.Alloc(ctx, "sink", qos.Reliable(), tp.Hosts["a"].Opt())
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for off := 0; off < len(want); off += 1000 {
		if _, err := f.Write(want[off:min(off+1000, len(want))]); err != nil {
			t.Fatalf("write at %d: %v", off, err)
		}
	}
	if err := f.Close(); err != nil && err != io.EOF {
		t.Fatalf("close: %v", err)
	}
	b := <-got
	t.Logf("%d bytes over a link losing 20%% of packets in %v", len(b), time.Since(start).Round(time.Millisecond))
	if !bytes.Equal(b, want) {
		t.Fatalf("received %d bytes, want %d identical bytes", len(b), len(want))
	}
}
