// Package local is the IPCP kind that connects processes of one host.
// Names registered in a local layer are reachable by every process on
// the host. The IRMd connects the two processes of a local flow
// directly (one socket pair, no IPCP on the path, as the C prototype
// does) once this IPCP vouches for the name, and tells both ends if the
// IPCP dies, so the layer's life still bounds its flows. Alloc, which
// relays between two data channels, serves any caller that asks the
// IPCP itself for a flow.
package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/ouro-net/ouro/ipcpd"
	"github.com/ouro-net/ouro/lib/ctrl"
	"github.com/ouro-net/ouro/lib/pipe"
)

// MTU is the largest packet a local flow carries.
const MTU = 65000

// IPCP is a local IPCP.
type IPCP struct {
	h *ipcpd.Host

	mu     sync.Mutex
	names  map[string]bool
	closed bool
	wg     sync.WaitGroup
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

// Alloc finds the accepting process through the IRMd and relays
// between the two ends until either deallocates.
func (l *IPCP) Alloc(ctx context.Context, f *ipcpd.Flow) (int, error) {
	ok, _ := l.Query(ctx, f.Name)
	if !ok {
		return 0, fmt.Errorf("name %q is not registered in layer %s", f.Name, l.h.Layer())
	}
	g, err := l.h.Arrive(ctx, f.Name, f.QoS, MTU)
	if err != nil {
		return 0, fmt.Errorf("allocate to %q: %w", f.Name, err)
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		g.End(true)
		return 0, errors.New("IPCP is shutting down")
	}
	l.wg.Add(2)
	l.mu.Unlock()
	go l.relay(f, g)
	go l.relay(g, f)
	return MTU, nil
}

// relay moves packets from src's application to dst's until src ends.
func (l *IPCP) relay(src, dst *ipcpd.Flow) {
	defer l.wg.Done()
	buf := make([]byte, MTU+1)
	for {
		n, k, err := src.Pipe.Read(buf)
		if err != nil {
			if errors.Is(err, io.ErrShortBuffer) {
				src.Drops.Add(1)
				continue
			}
			// The application died, or we are closing: tell the other
			// side the flow is deallocated.
			dst.End(true)
			src.End(false)
			return
		}
		switch k {
		case pipe.Data:
			src.PktsIn.Add(1)
			src.BytesIn.Add(uint64(n))
			if err := dst.Pipe.Write(buf[:n]); err != nil {
				dst.Drops.Add(1)
				if errors.Is(err, pipe.ErrGone) {
					src.End(true)
					dst.End(false)
					return
				}
				continue
			}
			dst.PktsOut.Add(1)
			dst.BytesOut.Add(uint64(n))
		case pipe.Dealloc:
			dst.End(true)
			src.End(false)
			return
		}
	}
}

// Close ends every flow and waits for the relays.
func (l *IPCP) Close() error {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	for _, f := range l.h.Flows() {
		f.End(false)
	}
	l.wg.Wait()
	return nil
}
