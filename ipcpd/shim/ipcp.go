package shim

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ouro-net/ouro/ipcpd"
	"github.com/ouro-net/ouro/ipcpd/eth/frame"
	"github.com/ouro-net/ouro/lib/ctrl"
	"github.com/ouro-net/ouro/lib/netlink"
)

// Opener opens the device named by the bootstrap's dev parameter for
// frames of one EtherType.
type Opener func(log hclog.Logger, dev string, etherType uint16) (*Device, error)

// IPCP is a shim IPCP of either Ethernet kind: bootstrap parameters,
// the engine, and the netlink watcher that feeds it carrier changes.
type IPCP struct {
	h    *ipcpd.Host
	kind string
	open Opener

	mu    sync.Mutex
	eng   *Ether
	watch *netlink.Watcher
	names map[string]bool
}

// NewIPCP returns an IPCP of kind (for messages) that opens its device
// with open at bootstrap.
func NewIPCP(h *ipcpd.Host, kind string, open Opener) *IPCP {
	return &IPCP{h: h, kind: kind, open: open, names: make(map[string]bool)}
}

// Params parses the bootstrap parameters `dev NAME [ethertype N]`.
func Params(kind string, params map[string]string) (dev string, etherType uint16, err error) {
	var unknown []string
	for k := range params {
		if k != "dev" && k != "ethertype" {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return "", 0, fmt.Errorf("%s IPCP: unknown parameter %s (want dev IFNAME [ethertype 0x%04X])",
			kind, strings.Join(unknown, ", "), frame.DefaultEtherType)
	}
	dev = params["dev"]
	if dev == "" {
		return "", 0, fmt.Errorf("%s IPCP: missing parameter dev (want dev IFNAME [ethertype 0x%04X])",
			kind, frame.DefaultEtherType)
	}
	etherType = frame.DefaultEtherType
	if s, ok := params["ethertype"]; ok {
		v, err := strconv.ParseUint(s, 0, 16)
		if err != nil || v < frame.MinEtherType {
			return "", 0, fmt.Errorf("%s IPCP: ethertype %q: want a number from 0x%04X to 0xFFFF (for example 0x%04X)",
				kind, s, frame.MinEtherType, frame.DefaultEtherType)
		}
		etherType = uint16(v)
	}
	return dev, etherType, nil
}

// Bootstrap opens the device and starts the engine and the watcher.
func (p *IPCP) Bootstrap(_ context.Context, layer string, params map[string]string) (ctrl.IPCPBootstrapReply, error) {
	dev, etype, err := Params(p.kind, params)
	if err != nil {
		return ctrl.IPCPBootstrapReply{}, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.eng != nil {
		return ctrl.IPCPBootstrapReply{}, fmt.Errorf("%s IPCP %s is already bootstrapped in layer %s", p.kind, p.h.Name, p.h.Layer())
	}
	d, err := p.open(p.h.Log, dev, etype)
	if err != nil {
		return ctrl.IPCPBootstrapReply{}, err
	}
	eng, err := NewEther(EtherConfig{Kind: p.kind, Dev: *d, EtherType: etype, Arrive: p.h.Arrive, Log: p.h.Log})
	if err != nil {
		d.Medium.Close()
		return ctrl.IPCPBootstrapReply{}, err
	}
	w, err := netlink.Watch(d.Index, func(l netlink.Link) {
		p.h.Log.Debug("link state", "link", l.String())
		eng.SetCarrier(l.Carrier())
	}, func(err error) {
		p.h.Log.Warn("link watch", "device", d.Name, "error", err)
	})
	if err != nil {
		eng.Close()
		return ctrl.IPCPBootstrapReply{}, fmt.Errorf("%s IPCP: watch %s: %w", p.kind, d.Name, err)
	}
	for n := range p.names {
		eng.Register(n)
	}
	p.eng, p.watch = eng, w
	p.h.Log.Info("device open", "layer", layer, "device", d.Name, "mac", d.MAC.String(), "ethertype", fmt.Sprintf("0x%04x", etype),
		"mtu", eng.MTU(), "carrier", d.Carrier)
	return ctrl.IPCPBootstrapReply{MTU: eng.MTU()}, nil
}

func (p *IPCP) engine() (*Ether, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.eng == nil {
		return nil, fmt.Errorf("%s IPCP %s is not bootstrapped", p.kind, p.h.Name)
	}
	return p.eng, nil
}

// Register makes name reachable through this IPCP.
func (p *IPCP) Register(_ context.Context, name string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.names[name] = true
	if p.eng != nil {
		p.eng.Register(name)
	}
	return nil
}

// Unregister withdraws name.
func (p *IPCP) Unregister(_ context.Context, name string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.names[name] {
		return fmt.Errorf("name %q is not registered in layer %s", name, p.h.Layer())
	}
	delete(p.names, name)
	if p.eng != nil {
		p.eng.Unregister(name)
	}
	return nil
}

// Query reports whether another station on the segment has name.
func (p *IPCP) Query(ctx context.Context, name string) (bool, error) {
	eng, err := p.engine()
	if err != nil {
		return false, err
	}
	return eng.Query(ctx, name)
}

// Alloc allocates a flow to f.Name over the segment.
func (p *IPCP) Alloc(ctx context.Context, f *ipcpd.Flow) (int, error) {
	eng, err := p.engine()
	if err != nil {
		return 0, err
	}
	return eng.Alloc(ctx, f)
}

// Show describes the device, its link, names, flows and counters.
func (p *IPCP) Show(context.Context) (string, error) {
	p.mu.Lock()
	eng, w := p.eng, p.watch
	p.mu.Unlock()
	if eng == nil {
		return "", fmt.Errorf("%s IPCP %s is not bootstrapped", p.kind, p.h.Name)
	}
	s := eng.Show()
	if l, ok := w.Link(); ok {
		s += fmt.Sprintf("netlink  %s\n", l)
	}
	return s, nil
}

// Status describes the device, its link, names, flows and counters as
// data (ctrl.ShimStatus).
func (p *IPCP) Status(context.Context) (*ctrl.Status, error) {
	p.mu.Lock()
	eng := p.eng
	p.mu.Unlock()
	if eng == nil {
		return nil, nil
	}
	sh := eng.Status(eng.mediumCounters())
	sh.Address = eng.MAC().String()
	st := &ctrl.Status{At: time.Now(), Shim: sh}
	st.Process.Flows = len(p.h.Flows())
	return st, nil
}

// Close stops the watcher, then the engine (which deallocates its flows
// and unblocks its reader).
func (p *IPCP) Close() error {
	p.mu.Lock()
	eng, w := p.eng, p.watch
	p.eng, p.watch = nil, nil
	p.mu.Unlock()
	if eng == nil {
		return nil
	}
	return errors.Join(w.Close(), eng.Close())
}
