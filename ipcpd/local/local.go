// Package local is the IPCP kind that connects processes of one host.
// Names registered in a local layer are reachable by every process on
// the host. The IRMd connects the two processes of a local flow
// directly (one socket pair, no IPCP on the path, as the C prototype
// does) once this IPCP vouches for the name (Query), and tells both ends
// if the IPCP dies, so the layer's life still bounds its flows. The
// IPCP therefore never carries a flow: Alloc refuses, and the IRMd never
// calls it (every allocation, an IPCP's included, goes through the
// IRMd's direct path).
package local

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/ouro-net/ouro/ipcpd"
	"github.com/ouro-net/ouro/lib/ctrl"
)

// MTU is the largest packet a local flow carries.
const MTU = 65000

// ErrNoRelay is Alloc's answer: local flows are connected directly by
// the IRMd, never through the IPCP.
var ErrNoRelay = errors.New("a local IPCP carries no flow: the IRMd connects local flows directly")

// IPCP is a local IPCP: the set of names registered in its layer.
type IPCP struct {
	h *ipcpd.Host

	mu    sync.Mutex
	names map[string]bool
}

// New is the local kind's constructor.
func New(h *ipcpd.Host) (ipcpd.IPCP, error) {
	return &IPCP{h: h, names: make(map[string]bool)}, nil
}

// Bootstrap accepts no parameters.
func (l *IPCP) Bootstrap(_ context.Context, layer string, params map[string]string) (ctrl.IPCPBootstrapReply, error) {
	for k := range params {
		return ctrl.IPCPBootstrapReply{}, fmt.Errorf("local IPCP takes no parameter %q", k)
	}
	return ctrl.IPCPBootstrapReply{MTU: MTU}, nil
}

// Register makes name reachable on this host.
func (l *IPCP) Register(_ context.Context, name string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.names[name] = true
	return nil
}

// Unregister withdraws name.
func (l *IPCP) Unregister(_ context.Context, name string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.names[name] {
		return fmt.Errorf("name %q is not registered in layer %s", name, l.h.Layer())
	}
	delete(l.names, name)
	return nil
}

// Query reports whether name is registered here.
func (l *IPCP) Query(_ context.Context, name string) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.names[name], nil
}

// Alloc refuses: see ErrNoRelay.
func (l *IPCP) Alloc(context.Context, *ipcpd.Flow) (int, error) {
	return 0, ErrNoRelay
}

// Close releases nothing: the IPCP holds no flow. The IRMd tells the
// ends of the layer's direct flows when the IPCP is gone.
func (l *IPCP) Close() error { return nil }

// Status describes the layer as data: the names registered and the
// flows set up (the Host fills in the process part).
func (l *IPCP) Status(_ context.Context) (*ctrl.Status, error) {
	l.mu.Lock()
	names := make([]string, 0, len(l.names))
	for n := range l.names {
		names = append(names, n)
	}
	l.mu.Unlock()
	sort.Strings(names)
	flows := len(l.h.Flows())
	return &ctrl.Status{At: time.Now(), Local: &ctrl.LocalStatus{Names: names, Flows: flows},
		Process: ctrl.ProcessStatus{Flows: flows}}, nil
}
