// Package ipcpd is the runtime every IPC process shares, whatever its
// kind: the control channel to its IRMd (inherited as descriptor 3),
// dispatch of the IRMd's requests to the kind's implementation
// (control.go, from the table ctrl.IRMdToIPCPOps), and the plumbing of
// N+1 flows (the data channels handed over by the IRMd).
//
// The channel is the IPCP's identity: the IRMd knows an IPCP by it,
// never by its pid. Everything the IPCP asks of its IRMd goes over it:
// flows arriving for its names (Host.Arrive), flows ending, name
// resolution (Host.Resolve), and the control connections over which it
// allocates its lower flows and listens as an application would
// (Host.Dial, used with flow.WithDialer).
//
// A kind implements IPCP (and, where it makes sense, the optional
// Enroller, Connector, Binder, StatusReporter and Shower interfaces)
// and is registered with a Constructor in the Kinds map that cmd/irm
// builds (ipcpd/all); there is no global registry.
package ipcpd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ouro-net/ouro/lib/ctrl"
	"github.com/ouro-net/ouro/lib/pipe"
	"github.com/ouro-net/ouro/lib/qos"
)

// IPCP is what every kind implements.
type IPCP interface {
	// Bootstrap makes this IPCP the first member of layer (shims: the
	// only member on this host) with kind-specific params.
	Bootstrap(ctx context.Context, layer string, params map[string]string) (ctrl.IPCPBootstrapReply, error)
	// Register makes name reachable through this IPCP.
	Register(ctx context.Context, name string) error
	// Unregister withdraws name.
	Unregister(ctx context.Context, name string) error
	// Query reports whether name can be reached through this IPCP.
	Query(ctx context.Context, name string) (bool, error)
	// Alloc allocates an outgoing flow to f.Name; on success the IPCP
	// owns f and moves its packets until it ends. On error the runtime
	// closes f.
	Alloc(ctx context.Context, f *Flow) (mtu int, err error)
	// Close releases everything; flows end with Dealloc.
	Close() error
}

// Enroller is implemented by kinds that join existing layers.
type Enroller interface {
	Enroll(ctx context.Context, layer, dst string) (ctrl.IPCPBootstrapReply, error)
}

// SecretEnroller is implemented by kinds that join layers which admit
// only holders of a secret; secret is the path of the secret's file,
// read by the IPCP itself (the secret never travels in control
// messages).
type SecretEnroller interface {
	EnrollSecret(ctx context.Context, layer, dst, secret string) (ctrl.IPCPBootstrapReply, error)
}

// Connector is implemented by kinds that build adjacencies.
type Connector interface {
	Connect(ctx context.Context, req ctrl.IPCPConnect) error
	Disconnect(ctx context.Context, req ctrl.IPCPConnect) error
}

// Binder is implemented by kinds that accept flows through the IRMd as
// an application does (to enroll members and open adjacencies): Bind
// makes the IPCP listen for flows to name.
type Binder interface {
	Bind(ctx context.Context, name string) error
	Unbind(ctx context.Context, name string) error
}

// Shower is implemented by kinds that describe their layer as text
// (kinds without a typed status).
type Shower interface {
	Show(ctx context.Context) (string, error)
}

// StatusReporter is implemented by kinds that describe their layer as
// data (ctrl.Status); the Host fills in the process part.
type StatusReporter interface {
	Status(ctx context.Context) (*ctrl.Status, error)
}

// Constructor builds an IPCP of one kind on a Host.
type Constructor func(h *Host) (IPCP, error)

// Kinds maps type names (as in `irm ipcp create type T`) to constructors.
type Kinds map[string]Constructor

// Flow is one N+1 flow as an IPCP handles it: the IPCP's end of the
// data channel to an application (or to an IPCP above).
type Flow struct {
	ID   uint64
	Name string
	QoS  qos.Spec
	Pipe *pipe.Pipe

	// Counters, maintained by the kind.
	PktsIn, PktsOut, BytesIn, BytesOut, Drops atomic.Uint64
	// Path label state, for kinds that label flows (Labelled set):
	// the label the flow's packets carry and its changes.
	Labelled   atomic.Bool
	Label      atomic.Uint32
	LabelBends atomic.Uint64

	since   time.Time
	host    *Host
	endOnce sync.Once
	down    atomic.Bool
}

// MarkState records a DOWN or UP the kind signals to the application,
// so that `irm flow list` shows the flow's real state.
func (f *Flow) MarkState(k pipe.Kind) {
	switch k {
	case pipe.Down:
		f.down.Store(true)
	case pipe.Up:
		f.down.Store(false)
	}
}

func (f *Flow) state() string {
	if f.down.Load() {
		return "down"
	}
	return "up"
}

// End reports the flow's end to the IRMd (once) and closes the pipe.
// If dealloc is true the application is told with a Dealloc record
// (its Read returns io.EOF); otherwise it sees the flow as gone.
func (f *Flow) End(dealloc bool) {
	f.endOnce.Do(func() {
		if dealloc {
			f.Pipe.Dealloc()
		} else {
			f.Pipe.Close()
		}
		if f.host != nil {
			f.host.flowEnded(f)
		}
	})
}

// Host is what the runtime offers a kind: identity, logging, and the
// IRMd services an IPCP needs.
type Host struct {
	Name   string
	Type   string
	RunDir string
	Log    hclog.Logger

	peer  *ctrl.Peer
	ipcp  IPCP
	layer atomic.Value

	mu    sync.Mutex
	flows map[uint64]*Flow

	// table serves the IRMd's requests (control.go); fixed before the
	// channel opens.
	table map[string]route
}

// Layer returns the layer this IPCP belongs to, once bootstrapped.
func (h *Host) Layer() string {
	s, _ := h.layer.Load().(string)
	return s
}

// Arrive asks the IRMd for a process that accepts flows for name and
// returns the IPCP's end of the new flow.
func (h *Host) Arrive(ctx context.Context, name string, q qos.Spec, mtu int) (*Flow, error) {
	rep, files, err := ctrl.Invoke(ctx, h.peer, ctrl.IPCPArriveOp, ctrl.IPCPArrive{Name: name, QoS: q, MTU: mtu})
	if err != nil {
		return nil, err
	}
	if len(files) != 1 {
		ctrl.CloseFiles(files)
		return nil, errors.New("arrive: IRMd sent no flow descriptor")
	}
	p, err := pipe.New(files[0])
	if err != nil {
		return nil, err
	}
	f := &Flow{ID: rep.ID, Name: name, QoS: q, Pipe: p}
	h.addFlow(f)
	return f, nil
}

func (h *Host) addFlow(f *Flow) {
	f.host = h
	f.since = time.Now()
	h.mu.Lock()
	h.flows[f.ID] = f
	h.mu.Unlock()
}

func (h *Host) flowEnded(f *Flow) {
	h.mu.Lock()
	delete(h.flows, f.ID)
	h.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, files, err := ctrl.Invoke(ctx, h.peer, ctrl.IPCPFlowEndOp, ctrl.IPCPFlowEnd{ID: f.ID})
	ctrl.CloseFiles(files)
	if err != nil {
		h.Log.Debug("flow end not reported", "flow", f.ID, "error", err)
	}
}

// Flows returns the flows this IPCP serves.
func (h *Host) Flows() []*Flow {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]*Flow, 0, len(h.flows))
	for _, f := range h.flows {
		out = append(out, f)
	}
	return out
}

// Run is the body of an IPCP process: it serves the control channel on
// descriptor 3 until the IRMd goes away or a signal arrives.
func Run(kinds Kinds, typ, name, rundir string, log hclog.Logger) error {
	ctor, ok := kinds[typ]
	if !ok {
		return fmt.Errorf("unknown IPCP type %q", typ)
	}
	conn, err := ctrl.FileConn(os.NewFile(3, "irmd"))
	if err != nil {
		return fmt.Errorf("ipcpd %s: %w", name, err)
	}
	if err := raisePriority(); err != nil {
		log.Debug("scheduling priority unchanged", "nice", Nice, "error", err)
	}
	applyMemoryLimit(log)
	h := &Host{Name: name, Type: typ, RunDir: rundir, Log: log, flows: make(map[uint64]*Flow)}
	h.layer.Store("")
	ipcp, err := ctor(h)
	if err != nil {
		conn.Close()
		return fmt.Errorf("ipcpd %s: %w", name, err)
	}
	h.ipcp = ipcp
	h.table = h.routes()
	h.peer = ctrl.NewPeer(conn, h.handle, log)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_, files, err := ctrl.Invoke(ctx, h.peer, ctrl.IPCPUpOp, ctrl.IPCPUp{PID: os.Getpid(), Name: name, Type: typ})
	ctrl.CloseFiles(files)
	cancel()
	if err != nil {
		log.Error("IRMd did not take us", "error", err)
	}
	select {
	case <-h.peer.Done():
		log.Debug("IRMd connection closed; exiting")
	case s := <-sig:
		log.Info("signal; exiting", "signal", s)
	}
	ipcp.Close()
	// Flows end without a Dealloc: their applications see the flow as
	// gone, which is the truth when the IPCP under them goes away.
	for _, f := range h.Flows() {
		f.End(false)
	}
	h.peer.Close()
	h.peer.Wait()
	return nil
}

func (h *Host) connector() (Connector, error) {
	cn, ok := h.ipcp.(Connector)
	if !ok {
		return nil, fmt.Errorf("IPCP %s (type %s) has no adjacencies to manage", h.Name, h.Type)
	}
	return cn, nil
}

func (h *Host) binder() (Binder, error) {
	b, ok := h.ipcp.(Binder)
	if !ok {
		return nil, fmt.Errorf("IPCP %s (type %s) does not accept flows for names", h.Name, h.Type)
	}
	return b, nil
}

// autobind binds a Binder IPCP to its own name and its layer's name.
func (h *Host) autobind(ctx context.Context, layer string) error {
	b, ok := h.ipcp.(Binder)
	if !ok {
		return nil
	}
	for _, n := range []string{h.Name, layer} {
		if err := b.Bind(ctx, n); err != nil {
			return fmt.Errorf("autobind %s: %w", n, err)
		}
	}
	return nil
}

// Peer returns the control connection to the IRMd.
func (h *Host) Peer() *ctrl.Peer { return h.peer }

// Dial returns a new control connection to the IRMd that the IRMd
// knows as this IPCP's own: it is made over the IPCP's channel
// (ipcpd.dial), not by connecting to the public socket, so no other
// process can pass for the IPCP. The IPCP allocates its lower flows and
// listens over such connections (flow.WithDialer(h.Dial)); the IRMd
// leaves the IPCP's own layer out of those allocations.
func (h *Host) Dial(ctx context.Context) (*ctrl.Conn, error) {
	_, files, err := ctrl.Invoke(ctx, h.peer, ctrl.IPCPDialOp, ctrl.None{})
	if err != nil {
		ctrl.CloseFiles(files)
		return nil, fmt.Errorf("IPCP connection to the IRMd: %w", err)
	}
	if len(files) != 1 {
		ctrl.CloseFiles(files)
		return nil, fmt.Errorf("IPCP connection to the IRMd: %d descriptors in the reply, want 1", len(files))
	}
	return ctrl.FileConn(files[0])
}

// Resolve asks the IRMd which layers reach name, nearest first; the
// IPCP's own layer is never among them. The question goes over the
// IPCP's own channel, by which the IRMd knows which layer to leave out.
func (h *Host) Resolve(ctx context.Context, name string) ([]string, error) {
	rep, files, err := ctrl.Invoke(ctx, h.peer, ctrl.IPCPResolveOp, ctrl.NameResolve{Name: name})
	ctrl.CloseFiles(files)
	if err != nil {
		return nil, err
	}
	return rep.Layers, nil
}

// layerInfo answers layer.show: the kind's typed status (StatusReporter)
// and its own text (Shower), with the process part filled in.
func (h *Host) layerInfo(ctx context.Context) (ctrl.LayerInfo, error) {
	info := ctrl.LayerInfo{Layer: h.Layer(), IPCP: h.Name, Type: h.Type}
	if sr, ok := h.ipcp.(StatusReporter); ok {
		st, err := sr.Status(ctx)
		if err != nil {
			return info, err
		}
		info.Status = st
	}
	if sh, ok := h.ipcp.(Shower); ok {
		text, err := sh.Show(ctx)
		if err != nil {
			return info, err
		}
		info.Text = text
	}
	if info.Status == nil {
		info.Status = &ctrl.Status{At: time.Now()}
		info.Status.Process.Flows = len(h.Flows())
	}
	fillProcess(&info.Status.Process)
	return info, nil
}

// fillProcess describes this process: pid, goroutines and heap.
func fillProcess(p *ctrl.ProcessStatus) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	p.PID = os.Getpid()
	p.Goroutines = runtime.NumGoroutine()
	p.HeapBytes = ms.HeapAlloc
}
