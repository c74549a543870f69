package ctrl

import (
	"reflect"
	"testing"
)

// allOps is every operation of the API, in both directions.
func allOps() []Operation {
	out := append([]Operation{}, ClientOps...)
	out = append(out, ArriveFlow, DownFlow)
	out = append(out, IRMdToIPCPOps...)
	return append(out, IPCPOps...)
}

// TestOpTable checks the table: every client operation has a class the
// IRMd checks, names are unique within a table, and no request or
// response type is carried by two operations of different names (the
// empty None aside).
func TestOpTable(t *testing.T) {
	seen := map[string]bool{}
	for _, op := range ClientOps {
		if seen[op.OpName()] {
			t.Errorf("operation %s twice in ClientOps", op.OpName())
		}
		seen[op.OpName()] = true
		if a := op.OpAccess(); a != AccessOpen && a != AccessManage && a != AccessListen {
			t.Errorf("client operation %s has access class %v", op.OpName(), a)
		}
	}
	for _, op := range IPCPOps {
		if seen[op.OpName()] {
			t.Errorf("IPCP channel operation %s is also a client operation", op.OpName())
		}
		if op.OpAccess() != AccessIPCP {
			t.Errorf("IPCP channel operation %s has access class %v", op.OpName(), op.OpAccess())
		}
	}
	carrier := map[reflect.Type]string{}
	none := reflect.TypeOf(None{})
	for _, op := range allOps() {
		req, resp := op.Bodies()
		for _, v := range []any{req, resp} {
			ty := reflect.TypeOf(v)
			if ty == none {
				continue
			}
			if prev, ok := carrier[ty]; ok && prev != op.OpName() {
				// A response may answer the request of the same type
				// (FlowInfo: alloc's reply, arrive's request and the
				// IPCP's alloc request are one description of a flow).
				if ty != reflect.TypeOf(FlowInfo{}) && ty != reflect.TypeOf(IPCPAllocReply{}) &&
					ty != reflect.TypeOf(NameResolve{}) && ty != reflect.TypeOf(NameResolveReply{}) &&
					ty != reflect.TypeOf(FlowList{}) {
					t.Errorf("type %s carried by %s and %s", ty, prev, op.OpName())
				}
				continue
			}
			carrier[ty] = op.OpName()
		}
	}
}
