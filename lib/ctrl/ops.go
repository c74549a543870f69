package ctrl

import (
	"time"

	"github.com/ouro-net/ouro/lib/qos"
)

// Wire names of the operations; api.go gives each its types.

// Operations served by the IRMd to the CLI and to applications.
const (
	OpIPCPCreate     = "ipcp.create"
	OpIPCPBootstrap  = "ipcp.bootstrap"
	OpIPCPEnroll     = "ipcp.enroll"
	OpIPCPConnect    = "ipcp.connect"
	OpIPCPDisconnect = "ipcp.disconnect"
	OpIPCPList       = "ipcp.list"
	OpIPCPDestroy    = "ipcp.destroy"
	OpBind           = "bind"
	OpUnbind         = "unbind"
	OpNameCreate     = "name.create"
	OpNameRegister   = "name.register"
	OpNameUnregister = "name.unregister"
	OpNameList       = "name.list"
	OpLayerShow      = "layer.show"
	OpFlowList       = "flow.list"
	OpFlowAlloc      = "flow.alloc"
	OpFlowListen     = "flow.listen"
	OpFlowUnlisten   = "flow.unlisten"
	// OpNameResolve lists the layers on this host that reach a name
	// (an IPCP uses OpIPCPResolve, which leaves out its own layer).
	OpNameResolve = "name.resolve"
	// OpFlowEnd tells the IRMd that the caller closed a direct flow it
	// accepted (the connection it holds the flow by lives on).
	OpFlowEnd = "flow.end"
)

// Operations the IRMd calls on applications.
const (
	// OpFlowArrive hands a listening process a new flow (one descriptor).
	OpFlowArrive = "flow.arrive"
	// OpFlowDown tells a process that a direct flow's layer is gone.
	OpFlowDown = "flow.down"
)

// Operations the IRMd calls on an IPCP.
const (
	OpIPCPUp       = "ipcpd.up"
	OpIPCPQuery    = "ipcpd.query"
	OpIPCPAlloc    = "ipcpd.alloc"
	OpIPCPRegister = "ipcpd.register"
	OpIPCPUnreg    = "ipcpd.unregister"
	OpIPCPFlows    = "ipcpd.flows"
	// OpIPCPBind asks an IPCP to accept flows for a name (autobind,
	// `irm bind ipcp`); OpIPCPUnbind stops it.
	OpIPCPBind   = "ipcpd.bind"
	OpIPCPUnbind = "ipcpd.unbind"
)

// Operations an IPCP calls on the IRMd.
const (
	// OpIPCPArrive asks the IRMd for a process accepting a name; the
	// reply carries the IPCP's end of the new flow.
	OpIPCPArrive = "ipcpd.arrive"
	// OpIPCPFlowEnd tells the IRMd that a flow ended.
	OpIPCPFlowEnd = "ipcpd.flowend"
	// OpIPCPResolve is OpNameResolve on the IPCP's own channel: the
	// IRMd leaves out the caller's layer.
	OpIPCPResolve = "ipcpd.resolve"
	// OpIPCPDial asks for a new control connection that the IRMd knows
	// to be this IPCP's: the IPCP allocates its lower flows and listens
	// over it as an application would, and the IRMd leaves out the
	// IPCP's own layer there. The reply carries the connection's end.
	OpIPCPDial = "ipcpd.dial"
)

// IPCPCreate asks for a new IPCP process.
type IPCPCreate struct {
	Type string `msgpack:"type"`
	Name string `msgpack:"name"`
}

// IPCPBootstrap creates a layer with this IPCP as its first member.
type IPCPBootstrap struct {
	Type     string            `msgpack:"type"`
	Name     string            `msgpack:"name"`
	Layer    string            `msgpack:"layer"`
	Params   map[string]string `msgpack:"params"`
	Autobind bool              `msgpack:"autobind"`
}

// IPCPEnroll joins an existing layer. When no IPCP named Name exists,
// the IRMd creates one of type Type (unicast when empty), as the C
// tool does.
type IPCPEnroll struct {
	Name     string `msgpack:"name"`
	Layer    string `msgpack:"layer"`
	Dst      string `msgpack:"dst"`
	Autobind bool   `msgpack:"autobind"`
	Type     string `msgpack:"type,omitempty"`
	// Secret is the path of the layer secret's file (irm key
	// generate), read by the IPCP; never the secret itself.
	Secret string `msgpack:"secret,omitempty"`
}

// IPCPConnect builds (or, from disconnect, tears down) an adjacency.
type IPCPConnect struct {
	Name      string `msgpack:"name"`
	Dst       string `msgpack:"dst"`
	Component string `msgpack:"component"`
	Layer     string `msgpack:"layer"`
	Cost      uint32 `msgpack:"cost"`
}

// IPCPRef names one IPCP.
type IPCPRef struct {
	Name string `msgpack:"name"`
}

// IPCPInfo describes one IPCP in listings.
type IPCPInfo struct {
	PID     int    `msgpack:"pid" json:"pid"`
	Name    string `msgpack:"name" json:"name"`
	Type    string `msgpack:"type" json:"type"`
	Layer   string `msgpack:"layer" json:"layer"`
	State   string `msgpack:"state" json:"state"`
	Address string `msgpack:"address" json:"address"`
}

// IPCPList is the reply to ipcp.list.
type IPCPList struct {
	IPCPs []IPCPInfo `msgpack:"ipcps"`
}

// Bind binds (or unbinds) a program, a process or an IPCP to a name.
type Bind struct {
	Program string   `msgpack:"program"`
	PID     int      `msgpack:"pid"`
	IPCP    string   `msgpack:"ipcp"`
	Name    string   `msgpack:"name"`
	Auto    bool     `msgpack:"auto"`
	Args    []string `msgpack:"args"`
}

// NameCreate creates a name with a load-balancing policy.
type NameCreate struct {
	Name string `msgpack:"name"`
	LB   string `msgpack:"lb"`
}

// NameRegister registers (or unregisters) a name in layers.
type NameRegister struct {
	Name   string   `msgpack:"name"`
	Layers []string `msgpack:"layers"`
}

// NameInfo describes one name in listings.
type NameInfo struct {
	Name      string   `msgpack:"name" json:"name"`
	LB        string   `msgpack:"lb" json:"lb"`
	Layers    []string `msgpack:"layers" json:"layers"`
	Programs  []string `msgpack:"programs" json:"programs"`
	Processes []int    `msgpack:"processes" json:"processes"`
}

// NameList is the reply to name.list.
type NameList struct {
	Names []NameInfo `msgpack:"names"`
}

// LayerShow asks the local member of a layer to describe it.
type LayerShow struct {
	Layer string `msgpack:"layer"`
}

// LayerInfo is the reply to layer.show. Status is the layer as data;
// Text is text an IPCP kind without a typed status renders itself
// (Render gives the text users see either way).
type LayerInfo struct {
	Layer  string  `msgpack:"layer" json:"layer"`
	IPCP   string  `msgpack:"ipcp" json:"ipcp"`
	Type   string  `msgpack:"type" json:"type"`
	Text   string  `msgpack:"text,omitempty" json:"text,omitempty"`
	Status *Status `msgpack:"status,omitempty" json:"status,omitempty"`
}

// FlowAlloc asks for a flow to a name. Layer pins the layer; an empty
// Layer lets the IRMd pick.
type FlowAlloc struct {
	Name  string   `msgpack:"name"`
	QoS   qos.Spec `msgpack:"qos"`
	Layer string   `msgpack:"layer"`
	// All asks resolution to wait for every layer (internal).
	All bool `msgpack:"-"`
}

// FlowInfo describes an allocated flow to the process that gets it.
type FlowInfo struct {
	ID    uint64   `msgpack:"id"`
	Name  string   `msgpack:"name"`
	QoS   qos.Spec `msgpack:"qos"`
	MTU   int      `msgpack:"mtu"`
	Layer string   `msgpack:"layer"`
	IPCP  string   `msgpack:"ipcp"`
	// Direct means the two processes share the data channel with no
	// IPCP between them (local layer); the holder must keep its control
	// connection open, which is how it hears of the layer's end.
	Direct bool `msgpack:"direct"`
}

// FlowListen binds the calling process to a name and asks for its flows.
type FlowListen struct {
	Name string `msgpack:"name"`
}

// FlowStat describes a flow in listings, with counters from its IPCP.
type FlowStat struct {
	ID       uint64    `msgpack:"id" json:"id"`
	Name     string    `msgpack:"name" json:"name"`
	IPCP     string    `msgpack:"ipcp" json:"ipcp"`
	Layer    string    `msgpack:"layer" json:"layer"`
	PID      int       `msgpack:"pid" json:"pid"`
	QoS      string    `msgpack:"qos" json:"qos"`
	State    string    `msgpack:"state" json:"state"`
	Since    time.Time `msgpack:"since" json:"since"`
	PktsIn   uint64    `msgpack:"pin" json:"packets_in"`
	PktsOut  uint64    `msgpack:"pout" json:"packets_out"`
	BytesIn  uint64    `msgpack:"bin" json:"bytes_in"`
	BytesOut uint64    `msgpack:"bout" json:"bytes_out"`
	Drops    uint64    `msgpack:"drops" json:"drops"`
	// Path is the flow's path label and its changes, for flows of an
	// IPCP that labels them (unicast); nil otherwise.
	Path *FlowPath `msgpack:"path,omitempty" json:"path,omitempty"`
}

// FlowPath is the path label state of one flow (see dt.MaxLabel): the
// label its packets carry now and how many times it changed, whether
// the application asked (a FRCT bend) or the IPCP moved the flow onto
// a less loaded next hop.
type FlowPath struct {
	Label uint8  `msgpack:"label" json:"label"`
	Bends uint64 `msgpack:"bends" json:"bends"`
}

// FlowList is the reply to flow.list and ipcpd.flows.
type FlowList struct {
	Flows []FlowStat `msgpack:"flows"`
}

// IPCPUp is what an IPCP sends right after start.
type IPCPUp struct {
	PID  int    `msgpack:"pid"`
	Name string `msgpack:"name"`
	Type string `msgpack:"type"`
}

// IPCPQuery asks an IPCP whether it can reach a name.
type IPCPQuery struct {
	Name string `msgpack:"name"`
}

// IPCPQueryReply answers IPCPQuery.
type IPCPQueryReply struct {
	Reachable bool `msgpack:"ok"`
}

// IPCPAllocReply answers ipcpd.alloc and ipcpd.arrive.
type IPCPAllocReply struct {
	ID  uint64 `msgpack:"id"`
	MTU int    `msgpack:"mtu"`
}

// IPCPArrive is an IPCP's request for an acceptor of a name.
type IPCPArrive struct {
	Name string   `msgpack:"name"`
	QoS  qos.Spec `msgpack:"qos"`
	MTU  int      `msgpack:"mtu"`
}

// IPCPFlowEnd reports a flow's end.
type IPCPFlowEnd struct {
	ID uint64 `msgpack:"id"`
}

// IPCPBootstrapReply answers bootstrap and enroll.
type IPCPBootstrapReply struct {
	Address string `msgpack:"address"`
	MTU     int    `msgpack:"mtu"`
}

// NameResolve asks which layers reach a name.
type NameResolve struct {
	Name string `msgpack:"name"`
}

// NameResolveReply lists the layers, nearest first.
type NameResolveReply struct {
	Layers []string `msgpack:"layers"`
}
