package ipcpd

import (
	"testing"

	"github.com/ouro-net/ouro/lib/ctrl"
)

// TestControlTable: an IPCP serves exactly the operations of
// ctrl.IRMdToIPCPOps.
func TestControlTable(t *testing.T) {
	routes := (&Host{}).routes()
	if len(routes) != len(ctrl.IRMdToIPCPOps) {
		t.Errorf("%d routes, %d operations in the table", len(routes), len(ctrl.IRMdToIPCPOps))
	}
	for _, op := range ctrl.IRMdToIPCPOps {
		if _, ok := routes[op.OpName()]; !ok {
			t.Errorf("no route for %s", op.OpName())
		}
	}
}
