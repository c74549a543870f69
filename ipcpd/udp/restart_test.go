package udp

import (
	"context"
	"testing"

	"github.com/ouro-net/ouro/lib/pipe"
	"github.com/ouro-net/ouro/lib/qos"
)

// A requester killed (its socket gone, no dealloc sent) and started
// again on the same address and port, as bench -failover cuts and
// restores a lower IPCP, hands out the eid of its old flow again: its
// new allocation must get a new flow at the responder (the old one
// ends there), not the responder's end of the old flow. (The data
// sockets handed to applications are bench -failover's part: these
// raw pipes do not follow a hand-over.)
func TestRestartedRequesterReconnects(t *testing.T) {
	noLeak(t)
	b, acc := newIPCP(t, "udp4", "127.0.0.1", "0")
	if err := b.Register(context.Background(), "echo"); err != nil {
		t.Fatal(err)
	}
	port := freePort(t, "127.0.0.2")
	start := func() *IPCP {
		a, _ := newIPCP(t, "udp4", "127.0.0.2", port, b.local.String())
		return a
	}
	roundTrip := func(appA, appB *pipe.Pipe, msg string) {
		t.Helper()
		buf := make([]byte, 2048)
		for _, p := range [][2]*pipe.Pipe{{appA, appB}, {appB, appA}} {
			if err := p[0].Write([]byte(msg)); err != nil {
				t.Fatal(err)
			}
			if n, k := read(t, p[1], buf); k != pipe.Data || string(buf[:n]) != msg {
				t.Fatalf("read %v %q, want data %q", k, buf[:n], msg)
			}
		}
	}
	a := start()
	appA, _, err := alloc(t, a, "echo", qos.Raw())
	if err != nil {
		t.Fatal(err)
	}
	old := acc.next(t).app
	roundTrip(appA, old, "one") // the data confirms the flow
	// Killed: nothing of A's goes out any more.
	a.conn.Close()
	a.Close()

	a2 := start()
	appA2, _, err := alloc(t, a2, "echo", qos.Raw())
	if err != nil {
		t.Fatal(err)
	}
	fresh := acc.next(t).app
	roundTrip(appA2, fresh, "two")
	buf := make([]byte, 64)
	if _, k := read(t, old, buf); k != pipe.Dealloc {
		t.Fatalf("the old flow's application read %v, want its deallocation", k)
	}
	waitFor(t, "one flow at b", func() bool { return flowCount(b) == 1 })
	roundTrip(appA2, fresh, "three")
}
