package udp

import (
	"context"
	"testing"

	"github.com/ouro-net/ouro/ipcpd"
	"github.com/ouro-net/ouro/lib/pipe"
	"github.com/ouro-net/ouro/lib/qos"
)

// TestRoundTripNoAlloc: one packet A→B→A through two udp4 IPCPs, the
// data crossing both (not direct): the receive path (socket, frame
// split, delivery into the flow's channel) and the send path allocate
// nothing per packet. AllocsPerRun counts every allocation in the
// process, so an allocation per packet anywhere on the path shows; a
// rare background one (a timer) averages out below 1.
func TestRoundTripNoAlloc(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector (.ci/run runs this test without -race)")
	}
	b, acc := newIPCP(t, "udp4", "127.0.0.1", "0")
	a, _ := newIPCP(t, "udp4", "127.0.0.2", "0", b.local.String())
	b.Register(context.Background(), "echo")
	ipcpEnd, appA, err := pipe.Pair()
	if err != nil {
		t.Fatal(err)
	}
	defer appA.Close()
	if _, err := a.Alloc(context.Background(), &ipcpd.Flow{Name: "echo", QoS: qos.Raw(), Pipe: ipcpEnd}); err != nil {
		t.Fatal(err)
	}
	appB := (<-acc.ch).app
	defer appB.Close()
	msg := make([]byte, 64)
	buf := make([]byte, 2048)
	var bad int
	roundTrip := func() {
		appA.Write(msg)
		n, _, err := appB.Read(buf)
		if err != nil || n != len(msg) {
			bad++
		}
		appB.Write(buf[:n])
		if n, _, err := appA.Read(buf); err != nil || n != len(msg) {
			bad++
		}
	}
	allocs := testing.AllocsPerRun(1000, roundTrip)
	if bad != 0 {
		t.Fatalf("%d reads failed or came short", bad)
	}
	if rx := b.eng.Counters.RxData.Load(); rx < 1000 {
		t.Fatalf("B's IPCP received %d data frames, want the data to cross it", rx)
	}
	if allocs != 0 {
		t.Fatalf("%v allocations per round trip, want 0", allocs)
	}
}
