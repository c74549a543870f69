// Package qos defines the quality-of-service spec a flow is allocated
// with: the named presets users pass on the command line and the
// individual knobs behind them. The flow library turns Reliable,
// InOrder, Congestion and PeerTimeout into end-to-end behaviour (FRCT).
// The Cube travels with the flow: the shims carry it in allocation
// requests and the unicast layer in every packet's header, where it
// takes part in choosing among equal-cost next hops. A unicast
// member's egress serves the cubes by priority once a lower flow backs
// up (dt.Scheduler, ipcpd/unicast/egress.go); the shims do not.
//
// A spec holds only what something acts on; a delay bound (MaxDelay)
// that was carried through every codec and read nowhere was removed
// (its 4 bytes in the shims' allocation requests are now reserved,
// sent as zero and ignored).
package qos

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Cube is the scheduling class a flow asks the layer for (see the
// package documentation).
type Cube uint8

// Cubes. Their service order when queues build up is low latency,
// best effort, bulk (dt.CubeClass), each with a guaranteed share.
const (
	CubeBestEffort Cube = 0
	CubeLowLatency Cube = 1
	CubeBulk       Cube = 2
)

// Spec is what a flow asks of the network.
type Spec struct {
	// Name is the preset the spec came from, or "custom".
	Name string `msgpack:"name"`
	// Cube selects the layer's scheduling class.
	Cube Cube `msgpack:"cube"`
	// Reliable asks for every packet to be delivered (retransmission).
	Reliable bool `msgpack:"rel"`
	// InOrder asks for delivery in the order written.
	InOrder bool `msgpack:"ord"`
	// Congestion asks for congestion control on a flow that is not
	// reliable (reliable flows always run it): the sender then paces
	// itself to its share of the path instead of sending at once.
	Congestion bool `msgpack:"cc,omitempty"`
	// PeerTimeout fails a flow whose peer stays silent this long
	// (0: the library default; only flows with FRCT keep alive).
	PeerTimeout time.Duration `msgpack:"timeout"`
	// Encrypt asks the two ends' flow libraries to agree on keys when
	// the flow is allocated and to seal every packet (package seal):
	// the layers below carry ciphertext only.
	Encrypt bool `msgpack:"enc,omitempty"`
}

// Raw is no end-to-end machinery at all: the bytes on the wire are the
// application's bytes.
func Raw() Spec { return Spec{Name: "raw"} }

// BestEffort is sequenced but unreliable delivery on the default cube.
func BestEffort() Spec { return Spec{Name: "best-effort", InOrder: true} }

// LowLatency is unreliable delivery on the low-latency cube.
func LowLatency() Spec {
	return Spec{Name: "low-latency", Cube: CubeLowLatency}
}

// Reliable is in-order, lossless delivery.
func Reliable() Spec { return Spec{Name: "reliable", Reliable: true, InOrder: true} }

// Bulk is reliable delivery on the bulk cube.
func Bulk() Spec { return Spec{Name: "bulk", Cube: CubeBulk, Reliable: true, InOrder: true} }

var presets = map[string]func() Spec{
	"raw":         Raw,
	"best-effort": BestEffort,
	"be":          BestEffort,
	"low-latency": LowLatency,
	"voice":       LowLatency,
	"reliable":    Reliable,
	"data":        Reliable,
	"bulk":        Bulk,
}

// Names lists the preset names, for usage messages.
func Names() string {
	var n []string
	for k := range presets {
		n = append(n, k)
	}
	sort.Strings(n)
	return strings.Join(n, ", ")
}

// Parse returns the preset called name.
func Parse(name string) (Spec, error) {
	f, ok := presets[strings.ToLower(name)]
	if !ok {
		return Spec{}, fmt.Errorf("unknown QoS %q (want one of %s)", name, Names())
	}
	return f(), nil
}

// UsesFRCT reports whether the flow library runs FRCT for this spec.
func (s Spec) UsesFRCT() bool { return s.Reliable || s.InOrder || s.Congestion }

// String names the spec.
func (s Spec) String() string {
	if s.Name != "" {
		return s.Name
	}
	return "custom"
}
