package irmd

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/ouro-net/ouro/flow"
	"github.com/ouro-net/ouro/lib/ctrl"
)

// TestDispatchTables checks that the IRMd serves exactly the operations
// of the tables in lib/ctrl, each with the table's access class.
func TestDispatchTables(t *testing.T) {
	d := &Daemon{}
	routes := d.clientRoutes()
	if len(routes) != len(ctrl.ClientOps) {
		t.Errorf("%d client routes, %d client operations", len(routes), len(ctrl.ClientOps))
	}
	for _, op := range ctrl.ClientOps {
		r, ok := routes[op.OpName()]
		if !ok {
			t.Errorf("no route for %s", op.OpName())
			continue
		}
		if r.access != op.OpAccess() {
			t.Errorf("%s served with access %v, table says %v", op.OpName(), r.access, op.OpAccess())
		}
	}
	ipcp := d.ipcpRoutes()
	if len(ipcp) != len(ctrl.IPCPOps) {
		t.Errorf("%d IPCP routes, %d IPCP operations", len(ipcp), len(ctrl.IPCPOps))
	}
	for _, op := range ctrl.IPCPOps {
		if _, ok := ipcp[op.OpName()]; !ok {
			t.Errorf("no IPCP route for %s", op.OpName())
		}
		if _, ok := routes[op.OpName()]; ok {
			t.Errorf("IPCP channel operation %s served on the public socket", op.OpName())
		}
	}
}

// TestIPCPOpsNotOnPublicSocket: a process on the public socket that
// sends the operations of an IPCP's own channel (asking for an acceptor
// of a name, reporting flows ended, resolving as an IPCP) is refused
// and changes nothing.
func TestIPCPOpsNotOnPublicSocket(t *testing.T) {
	run, err := os.MkdirTemp("", "ouro-t")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(run)
	d, err := Start(Config{RunDir: run})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx := context.Background()
	for op, body := range map[string]any{
		ctrl.OpIPCPArrive:  ctrl.IPCPArrive{Name: "x"},
		ctrl.OpIPCPFlowEnd: ctrl.IPCPFlowEnd{ID: 1},
		ctrl.OpIPCPResolve: ctrl.NameResolve{Name: "x"},
		ctrl.OpIPCPUp:      ctrl.IPCPUp{Name: "fake"},
		ctrl.OpIPCPDial:    ctrl.None{},
	} {
		err := flow.Call(ctx, run, op, body, nil)
		if err == nil || !strings.Contains(err.Error(), "unknown operation") {
			t.Errorf("%s on the public socket: %v, want unknown operation", op, err)
		}
	}
}
