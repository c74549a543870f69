package unicast_test

import (
	"context"
	"testing"
	"time"

	"github.com/ouro-net/ouro/flow"
	"github.com/ouro-net/ouro/internal/testenv"
	"github.com/ouro-net/ouro/ipcpd/unicast"
	"github.com/ouro-net/ouro/lib/pipe"
	"github.com/ouro-net/ouro/lib/qos"
)

// forwardLoopOverLocal builds a ForwardLoop whose adjacency is a real
// lower flow of a local layer (the two ends share the channel, so what
// the far end does not read stays queued) and whose endpoint is a pipe;
// it returns the far end of the lower flow and the endpoint's
// application end.
func forwardLoopOverLocal(t *testing.T) (*unicast.ForwardLoop, *flow.Flow, *flow.Flow, *pipe.Pipe) {
	t.Helper()
	h := testenv.StartHost(t)
	h.Bootstrap(t, "local", "lo", "lo", nil)
	h.Register(t, "lower", "lo")
	l, err := flow.Listen("lower", h.Opt())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lower, err := flow.Alloc(ctx, "lower", qos.Raw(), h.Opt())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lower.Close() })
	peer, err := l.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Close() })
	epIPCP, epApp, err := pipe.Pair()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { epIPCP.Close(); epApp.Close() })
	loop, err := unicast.NewForwardLoop(lower, epIPCP)
	if err != nil {
		t.Fatal(err)
	}
	// Nothing below may block the test for ever.
	lower.SetWriteDeadline(time.Now().Add(30 * time.Second))
	epIPCP.SetWriteDeadline(time.Now().Add(30 * time.Second))
	return loop, lower, peer, epApp
}

// TestEgressMarksWhenQueued: packets that leave while the lower flow's
// send queue is short go unmarked; once the far end stops reading and
// the queue passes the threshold, every packet leaves with its ECN
// field raised, and counted. The reader's buffer does not keep the mark.
func TestEgressMarksWhenQueued(t *testing.T) {
	loop, lower, peer, _ := forwardLoopOverLocal(t)
	const size = 1000
	sent := 0
	for ; lower.Queued() <= 2*unicast.ECNMarkAbove; sent++ {
		if sent > 400 {
			t.Fatalf("queue %d bytes after %d unread packets", lower.Queued(), sent)
		}
		if e := loop.ForwardSized(size); e != 0 {
			t.Fatalf("packet %d: the reader's buffer kept ECN %d", sent, e)
		}
	}
	const more = 10
	for range more {
		loop.ForwardSized(size)
	}
	sent += more
	buf := make([]byte, 4096)
	marked := 0
	for i := range sent {
		n, err := peer.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		e := unicast.PacketECN(buf[:n])
		if i == 0 && e != 0 {
			t.Fatalf("the first packet, sent to an empty queue, is marked %d", e)
		}
		if i >= sent-more && e == 0 {
			t.Fatalf("packet %d of %d, sent above twice the threshold, is not marked", i, sent)
		}
		if e != 0 {
			marked++
		}
	}
	if got := loop.Marked(); got != uint64(marked) || marked < more {
		t.Fatalf("counted %d marked, %d arrived marked (want at least %d)", got, marked, more)
	}
	// The queue drained: the next packet goes unmarked.
	loop.ForwardSized(size)
	if n, err := peer.Read(buf); err != nil || unicast.PacketECN(buf[:n]) != 0 {
		t.Fatalf("a packet sent to a drained queue: %v, ECN %d", err, unicast.PacketECN(buf[:n]))
	}
}

// TestDeliveryKeepsMark: a packet addressed to a local endpoint reaches
// its application as a DataCE record when some hop marked it and as
// Data otherwise, batched or not.
func TestDeliveryKeepsMark(t *testing.T) {
	loop, _, _, app := forwardLoopOverLocal(t)
	buf := make([]byte, 4096)
	for _, batched := range []bool{true, false} {
		for _, ecn := range []uint8{0, 1, 200} {
			loop.DeliverECN(ecn, batched)
			_, k, err := app.Read(buf)
			if err != nil {
				t.Fatal(err)
			}
			want := pipe.DataCE
			if ecn == 0 {
				want = pipe.Data
			}
			if k != want {
				t.Fatalf("batched %v, ECN %d: delivered as %v, want %v", batched, ecn, k, want)
			}
		}
	}
}
