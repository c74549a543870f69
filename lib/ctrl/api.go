package ctrl

import (
	"context"
	"os"
)

// The typed control API.
//
// Every operation is one Op value below: its wire name, its request and
// response types (as type parameters) and, for the operations the IRMd
// serves on its public socket, the access class the IRMd checks before
// serving it. The IRMd dispatches from ClientOps; Invoke calls an
// operation with the types the table gives it, so a caller cannot send
// one operation's body under another's name. The Op* string constants
// stay as the wire names (and for untyped callers of Peer.Call).

// Access is the access class of an operation the IRMd serves to clients.
type Access uint8

// Access classes. The IRMd's policy for each is documented in its
// access.go.
const (
	// AccessOpen: anyone who can reach the socket.
	AccessOpen Access = iota + 1
	// AccessManage: root or the IRMd's own uid; an operation touching a
	// name also needs to own it.
	AccessManage
	// AccessListen: checked against the bindings of the name.
	AccessListen
	// AccessIPCP: only on an IPCP's own channel to its IRMd, never on
	// the public socket.
	AccessIPCP
)

func (a Access) String() string {
	switch a {
	case AccessOpen:
		return "open"
	case AccessManage:
		return "manage"
	case AccessListen:
		return "listen"
	case AccessIPCP:
		return "ipcp"
	}
	return "unknown"
}

// Operation is what every Op offers without its type parameters.
type Operation interface {
	// OpName is the name on the wire.
	OpName() string
	// OpAccess is the access class.
	OpAccess() Access
	// Bodies returns zero values of the request and response types.
	Bodies() (req, resp any)
}

// Op is one operation with request type Req and response type Resp.
type Op[Req, Resp any] struct {
	Name   string
	Access Access
}

// OpName returns the operation's wire name.
func (o Op[Req, Resp]) OpName() string { return o.Name }

// OpAccess returns the operation's access class.
func (o Op[Req, Resp]) OpAccess() Access { return o.Access }

// Bodies returns zero values of the operation's request and response
// types (for tables and tests that inspect them).
func (o Op[Req, Resp]) Bodies() (any, any) {
	var req Req
	var resp Resp
	return req, resp
}

// None is the body of a request or reply that carries nothing.
type None struct{}

// Invoke calls op on p with req and returns its typed reply and the
// descriptors that came with it (the caller closes them).
func Invoke[Req, Resp any](ctx context.Context, p *Peer, op Op[Req, Resp], req Req, files ...*os.File) (Resp, []*os.File, error) {
	var resp Resp
	got, err := p.Call(ctx, op.Name, req, &resp, files...)
	return resp, got, err
}

// TargetName is implemented by request bodies that act on a name; the
// IRMd checks that the caller may change that name.
type TargetName interface{ Target() string }

// Operations the IRMd serves on its public socket (the CLI, tools and
// applications).
var (
	CreateIPCP     = Op[IPCPCreate, IPCPInfo]{OpIPCPCreate, AccessManage}
	BootstrapIPCP  = Op[IPCPBootstrap, IPCPBootstrapReply]{OpIPCPBootstrap, AccessManage}
	EnrollIPCP     = Op[IPCPEnroll, IPCPEnrollReply]{OpIPCPEnroll, AccessManage}
	ConnectIPCP    = Op[IPCPConnect, None]{OpIPCPConnect, AccessManage}
	DisconnectIPCP = Op[IPCPDisconnect, None]{OpIPCPDisconnect, AccessManage}
	ListIPCPs      = Op[None, IPCPList]{OpIPCPList, AccessOpen}
	DestroyIPCP    = Op[IPCPRef, None]{OpIPCPDestroy, AccessManage}
	BindName       = Op[Bind, None]{OpBind, AccessManage}
	UnbindName     = Op[Unbind, None]{OpUnbind, AccessManage}
	CreateName     = Op[NameCreate, None]{OpNameCreate, AccessManage}
	RegisterName   = Op[NameRegister, None]{OpNameRegister, AccessManage}
	UnregisterName = Op[NameUnregister, None]{OpNameUnregister, AccessManage}
	ListNames      = Op[None, NameList]{OpNameList, AccessOpen}
	ShowLayer      = Op[LayerShow, LayerInfo]{OpLayerShow, AccessOpen}
	ListFlows      = Op[None, FlowList]{OpFlowList, AccessOpen}
	AllocFlow      = Op[FlowAlloc, FlowInfo]{OpFlowAlloc, AccessOpen}
	ResolveName    = Op[NameResolve, NameResolveReply]{OpNameResolve, AccessOpen}
	EndFlow        = Op[FlowEnd, None]{OpFlowEnd, AccessOpen}
	ListenName     = Op[FlowListen, None]{OpFlowListen, AccessListen}
	UnlistenName   = Op[FlowUnlisten, None]{OpFlowUnlisten, AccessOpen}
)

// ClientOps is the table of operations the IRMd serves on its public
// socket; an operation not in it is refused.
var ClientOps = []Operation{
	CreateIPCP, BootstrapIPCP, EnrollIPCP, ConnectIPCP, DisconnectIPCP, ListIPCPs, DestroyIPCP,
	BindName, UnbindName, CreateName, RegisterName, UnregisterName, ListNames,
	ShowLayer, ListFlows, AllocFlow, ResolveName, EndFlow, ListenName, UnlistenName,
}

// Operations the IRMd calls on applications.
var (
	ArriveFlow = Op[FlowInfo, None]{OpFlowArrive, AccessOpen}
	DownFlow   = Op[FlowDown, None]{OpFlowDown, AccessOpen}
)

// Operations the IRMd calls on an IPCP over the IPCP's own channel.
var (
	IPCPDoBootstrap  = Op[IPCPBootstrap, IPCPBootstrapReply]{OpIPCPBootstrap, AccessIPCP}
	IPCPDoEnroll     = Op[IPCPEnroll, IPCPEnrollReply]{OpIPCPEnroll, AccessIPCP}
	IPCPDoConnect    = Op[IPCPConnect, None]{OpIPCPConnect, AccessIPCP}
	IPCPDoDisconnect = Op[IPCPDisconnect, None]{OpIPCPDisconnect, AccessIPCP}
	IPCPDoQuery      = Op[IPCPQuery, IPCPQueryReply]{OpIPCPQuery, AccessIPCP}
	IPCPDoAlloc      = Op[FlowInfo, IPCPAllocReply]{OpIPCPAlloc, AccessIPCP}
	IPCPDoRegister   = Op[IPCPRegister, None]{OpIPCPRegister, AccessIPCP}
	IPCPDoUnregister = Op[IPCPUnregister, None]{OpIPCPUnreg, AccessIPCP}
	IPCPDoBind       = Op[IPCPBind, None]{OpIPCPBind, AccessIPCP}
	IPCPDoUnbind     = Op[IPCPUnbind, None]{OpIPCPUnbind, AccessIPCP}
	IPCPDoShow       = Op[LayerShow, LayerInfo]{OpLayerShow, AccessIPCP}
	IPCPDoFlows      = Op[None, FlowList]{OpIPCPFlows, AccessIPCP}
)

// IRMdToIPCPOps is the table of operations an IPCP serves on its
// channel to the IRMd.
var IRMdToIPCPOps = []Operation{
	IPCPDoBootstrap, IPCPDoEnroll, IPCPDoConnect, IPCPDoDisconnect, IPCPDoQuery, IPCPDoAlloc,
	IPCPDoRegister, IPCPDoUnregister, IPCPDoBind, IPCPDoUnbind, IPCPDoShow, IPCPDoFlows,
}

// Operations an IPCP calls on its IRMd over its own channel.
var (
	IPCPUpOp      = Op[IPCPUp, None]{OpIPCPUp, AccessIPCP}
	IPCPArriveOp  = Op[IPCPArrive, IPCPAllocReply]{OpIPCPArrive, AccessIPCP}
	IPCPFlowEndOp = Op[IPCPFlowEnd, None]{OpIPCPFlowEnd, AccessIPCP}
	// IPCPResolveOp asks which layers other than the IPCP's own reach
	// a name (the IRMd knows the caller by its channel).
	IPCPResolveOp = Op[NameResolve, NameResolveReply]{OpIPCPResolve, AccessIPCP}
	// IPCPDialOp asks for a control connection of the IPCP's own (the
	// reply carries its descriptor), for flow.Alloc and flow.Listen.
	IPCPDialOp = Op[None, None]{OpIPCPDial, AccessIPCP}
)

// IPCPOps is the table of operations the IRMd serves on an IPCP's own
// channel.
var IPCPOps = []Operation{IPCPUpOp, IPCPArriveOp, IPCPFlowEndOp, IPCPResolveOp, IPCPDialOp}

// IPCPDisconnect tears down an adjacency (the fields of IPCPConnect that
// matter: Name, Dst, Component).
type IPCPDisconnect IPCPConnect

// IPCPEnrollReply answers enroll.
type IPCPEnrollReply IPCPBootstrapReply

// Unbind undoes a Bind.
type Unbind Bind

// NameUnregister withdraws a name from layers.
type NameUnregister NameRegister

// FlowUnlisten stops a process's listening on a name.
type FlowUnlisten FlowListen

// FlowEnd tells the IRMd that the caller closed a direct flow it holds.
type FlowEnd struct {
	ID uint64 `msgpack:"id"`
}

// FlowDown tells a process that the layer under a direct flow is gone.
type FlowDown struct {
	ID uint64 `msgpack:"id"`
}

// IPCPRegister asks an IPCP to register a name in its layer.
type IPCPRegister struct {
	Name string `msgpack:"name"`
}

// IPCPUnregister asks an IPCP to withdraw a name from its layer.
type IPCPUnregister struct {
	Name string `msgpack:"name"`
}

// IPCPBind asks an IPCP to accept flows for a name itself.
type IPCPBind struct {
	Name string `msgpack:"name"`
}

// IPCPUnbind asks an IPCP to stop accepting flows for a name.
type IPCPUnbind struct {
	Name string `msgpack:"name"`
}

// Target returns the name a Bind acts on.
func (m Bind) Target() string { return m.Name }

// Target returns the name an Unbind acts on.
func (m Unbind) Target() string { return m.Name }

// Target returns the name created.
func (m NameCreate) Target() string { return m.Name }

// Target returns the name registered.
func (m NameRegister) Target() string { return m.Name }

// Target returns the name unregistered.
func (m NameUnregister) Target() string { return m.Name }

// Target returns the name listened on.
func (m FlowListen) Target() string { return m.Name }
