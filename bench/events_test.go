package main

import (
	"context"
	"io"
	"os"
	"testing"

	"github.com/ouro-net/ouro/internal/topo"
	"github.com/ouro-net/ouro/lib/ctrl"
)

// TestEventsLocal runs the local rows of -events twice each: the events
// happen (the right error, each time) and are timed. How fast is what
// the bench reports, not what this test asserts.
func TestEventsLocal(t *testing.T) {
	e := &env{irm: os.Args[0], logLevel: "error", log: io.Discard}
	dir, closeDaemon, err := e.localDaemon()
	if err != nil {
		t.Fatal(err)
	}
	defer closeDaemon()
	ctx := context.Background()
	down, err := downOnDeath(ctx, dir, 2)
	if err != nil || len(down) != 2 {
		t.Fatalf("down on IPCP death: %v %v", down, err)
	}
	if err := topo.Call(dir, ctrl.OpIPCPBootstrap, ctrl.IPCPBootstrap{Type: "local", Name: "lo", Layer: "lo"}, nil); err != nil {
		t.Fatal(err)
	}
	eof, err := eofOnClose(ctx, dir, dir, "lo", 2)
	if err != nil || len(eof) != 2 {
		t.Fatalf("EOF on close: %v %v", eof, err)
	}
	t.Logf("down on IPCP death %v, EOF on close %v", down, eof)
}
