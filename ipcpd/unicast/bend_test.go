package unicast_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ouro-net/ouro/dt"
	"github.com/ouro-net/ouro/enroll"
	"github.com/ouro-net/ouro/flow"
	"github.com/ouro-net/ouro/internal/testenv"
	"github.com/ouro-net/ouro/ipcpd/unicast"
	"github.com/ouro-net/ouro/lib/pipe"
	"github.com/ouro-net/ouro/lib/qos"
)

// lowerPairs allocates n raw flows over a local layer and returns each
// with its far end.
func lowerPairs(t *testing.T, n int) (lowers, peers []*flow.Flow) {
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
	for i := 0; i < n; i++ {
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
		peer.SetReadDeadline(time.Now().Add(20 * time.Second))
		lowers, peers = append(lowers, lower), append(peers, peer)
	}
	return lowers, peers
}

// TestBendMovesFlow: an application's pipe.Bend record makes its IPCP
// stamp the new path label on every later packet of the flow and hash
// the flow with it, so it leaves by the next hop the FIB picks for that
// label; the same label keeps it there. Labels out of range or records
// of the wrong size change nothing and are counted.
func TestBendMovesFlow(t *testing.T) {
	lowers, peers := lowerPairs(t, 2)
	ipcpEnd, app, err := pipe.Pair()
	if err != nil {
		t.Fatal(err)
	}
	b := unicast.NewBendIPCP([2]*flow.Flow{lowers[0], lowers[1]}, ipcpEnd)
	defer b.Wait()
	defer app.Close()
	defer ipcpEnd.Close()

	// Each packet's payload is its expected label; read it back from
	// whichever lower flow it left by.
	got := make(chan [3]int, 64) // lower, label in header, payload
	for i, p := range peers {
		go func() {
			buf := make([]byte, 2048)
			for {
				n, err := p.Read(buf)
				if err != nil {
					return
				}
				got <- [3]int{i, int(unicast.PacketLabel(buf[:n])), int(buf[n-1])}
			}
		}()
	}
	expect := func(label uint8) {
		t.Helper()
		select {
		case g := <-got:
			if g[1] != int(label) || g[2] != int(label) || g[0] != b.Want(label) {
				t.Fatalf("packet sent on label %d left by adjacency %d with label %d (payload %d); want adjacency %d",
					label, g[0], g[1], g[2], b.Want(label))
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("packet on label %d never left", label)
		}
	}
	send := func(label uint8) {
		t.Helper()
		if err := app.Write([]byte{'x', label}); err != nil {
			t.Fatal(err)
		}
		expect(label)
	}
	send(0)
	send(0)
	used := map[int]bool{b.Want(0): true}
	for l := uint8(1); l <= dt.MaxLabel; l++ {
		if err := app.WriteKind(pipe.Bend, []byte{l}); err != nil {
			t.Fatal(err)
		}
		send(l)
		send(l)
		used[b.Want(l)] = true
	}
	if len(used) != 2 {
		t.Fatalf("16 labels used only adjacencies %v", used)
	}
	if bends, bad := b.Counters(); bends != dt.MaxLabel || bad != 0 {
		t.Fatalf("bends %d, bad labels %d; want %d, 0", bends, bad, dt.MaxLabel)
	}
	// Hostile or broken records: out of range, empty, too long.
	for _, rec := range [][]byte{{dt.MaxLabel + 1}, {0xff}, {}, {1, 2}} {
		if err := app.WriteKind(pipe.Bend, rec); err != nil {
			t.Fatal(err)
		}
	}
	send(dt.MaxLabel)
	if bends, bad := b.Counters(); bends != dt.MaxLabel || bad != 4 {
		t.Fatalf("after bad records: bends %d, bad labels %d; want %d, 4", bends, bad, dt.MaxLabel)
	}
}

// TestBadLabelFromWireDropped: a packet whose path label is out of
// range is dropped and counted; a packet with a valid label forwards.
func TestBadLabelFromWireDropped(t *testing.T) {
	loop, _, _, _ := forwardLoopOverLocal(t)
	if !loop.ForwardLabel(dt.MaxLabel) {
		t.Fatal("packet with label MaxLabel was not forwarded")
	}
	for _, l := range []uint8{dt.MaxLabel + 1, 0x80, 0xff} {
		if loop.ForwardLabel(l) {
			t.Fatalf("packet with label %d was forwarded", l)
		}
	}
	if n := loop.BadLabels(); n != 3 {
		t.Fatalf("bad labels counted %d, want 3", n)
	}
}

// TestEnrollRefusesOldVersion: a joiner speaking the layer protocol
// before the path label (version 1) is refused by a running member with
// an error that says why, and the member stays usable.
func TestEnrollRefusesOldVersion(t *testing.T) {
	tp := pair(t)
	b := tp.Hosts["b"]
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	f, err := flow.Alloc(ctx, "net", qos.Raw(), b.Opt(), flow.WithLayer("udp1"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var resp enroll.Response
	err = enroll.Exchange(ctx, f, 4, enroll.Request{V: 1, IPCP: "old", Layer: "net"}, &resp)
	// The member answers in its own version; a version-1 joiner fails
	// to decode that, and the answer's error says why as well.
	if !errors.Is(err, enroll.ErrVersion) && !strings.Contains(resp.Err, "path label") {
		t.Fatalf("old joiner: err %v, answer %+v; want a version refusal", err, resp)
	}
	if !strings.Contains(resp.Err, fmt.Sprintf("got 1, want %d", enroll.Version)) || !strings.Contains(resp.Err, "path label") {
		t.Fatalf("refusal %q does not say why", resp.Err)
	}
	serveEcho(t, tp, "b", "svc", "a")
	pingOK(t, tp, "a", "svc", 5)
}
