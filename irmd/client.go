package irmd

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"time"

	"github.com/ouro-net/ouro/lib/ctrl"
)

// client is one connection to the control socket: the CLI, an
// application, or an IPCP acting as an application for its lower flows.
type client struct {
	d *Daemon
	// cred is who connected (SO_PEERCRED); every request is checked
	// against it.
	cred ctrl.Cred
	// ipcp is the IPCP whose own connection this is (made over its
	// channel with ipcpd.dial), nil for a connection to the public
	// socket: an IPCP is known by its channel, never by its pid.
	ipcp *ipcpRec
	peer *ctrl.Peer
	// listens is guarded by d.mu.
	listens map[string]bool
	since   time.Time
}

// nameRec is the registry entry of a name.
type nameRec struct {
	name string
	// owner is the uid that created the name; only it and root may
	// change it (see access.go).
	owner    int
	lb       string
	layers   map[string]bool
	programs map[string]*program
	pids     map[int]uint64 // bound processes: pid to start time (procid.go)
	ipcps    map[string]bool
	rr       int
}

type program struct {
	path string
	args []string
	auto bool
	// as is the account of the user who bound the program: an
	// auto-started program runs as that user.
	as account
}

// flowRec is the IRMd's view of a flow end on this host.
type flowRec struct {
	id    uint64
	name  string
	ipcp  string
	layer string
	pid   int
	qos   string
	since time.Time
	// holder is the connection of the process holding a direct flow
	// (nil for flows through an IPCP, which reports their end).
	holder *client
}

func (d *Daemon) dropClient(c *client) {
	d.mu.Lock()
	delete(d.clients, c)
	for id, f := range d.flows {
		if f.holder == c {
			delete(d.flows, id)
		}
	}
	d.mu.Unlock()
	// The reader has stopped; close the socket now rather than leave
	// the descriptor to a finalizer.
	c.peer.Close()
	c.peer.Wait()
}

// nameLocked returns the entry for name, creating it with round-robin
// balancing, owned by uid owner, when it does not exist; d.mu held.
func (d *Daemon) nameLocked(name string, owner int) *nameRec {
	n := d.names[name]
	if n == nil {
		n = &nameRec{name: name, owner: owner, lb: "round-robin", layers: map[string]bool{},
			programs: map[string]*program{}, pids: map[int]uint64{}, ipcps: map[string]bool{}}
		d.names[name] = n
	}
	return n
}

func (d *Daemon) ipcp(name string) (*ipcpRec, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	r, ok := d.ipcps[name]
	if !ok {
		return nil, fmt.Errorf("no IPCP named %q", name)
	}
	return r, nil
}

func (d *Daemon) bootstrap(ctx context.Context, m ctrl.IPCPBootstrap, uid int) (ctrl.IPCPBootstrapReply, error) {
	if m.Layer == "" {
		return ctrl.IPCPBootstrapReply{}, errors.New("bootstrap: missing layer")
	}
	r, err := d.ipcpOrCreate(ctx, m.Type, m.Name)
	if err != nil {
		return ctrl.IPCPBootstrapReply{}, err
	}
	rep, err := call(ctx, r, ctrl.IPCPDoBootstrap, m)
	if err != nil {
		return ctrl.IPCPBootstrapReply{}, fmt.Errorf("bootstrap %s in layer %s: %w", m.Name, m.Layer, err)
	}
	d.joined(r, m.Layer, "bootstrapped", rep, m.Autobind, uid)
	return rep, nil
}

// defaultEnrollType is the type of the IPCP enroll creates when none of
// that name exists and no type is given.
const defaultEnrollType = "unicast"

func (d *Daemon) enroll(ctx context.Context, m ctrl.IPCPEnroll, uid int) (ctrl.IPCPEnrollReply, error) {
	if m.Layer == "" {
		return ctrl.IPCPEnrollReply{}, errors.New("enroll: missing layer")
	}
	d.mu.Lock()
	r, exists := d.ipcps[m.Name]
	d.mu.Unlock()
	created := false
	switch {
	case exists && m.Type != "" && m.Type != r.typ:
		return ctrl.IPCPEnrollReply{}, fmt.Errorf("enroll: IPCP %s is of type %s, not %s", m.Name, r.typ, m.Type)
	case !exists:
		typ := m.Type
		if typ == "" {
			typ = defaultEnrollType
		}
		var err error
		if r, err = d.createIPCP(ctx, typ, m.Name); err != nil {
			return ctrl.IPCPEnrollReply{}, fmt.Errorf("enroll: create IPCP %s: %w", m.Name, err)
		}
		created = true
	}
	rep, err := call(ctx, r, ctrl.IPCPDoEnroll, m)
	if err != nil {
		if created {
			// Leave the host as it was: a retry creates it again.
			r.stop(3 * time.Second)
		}
		return ctrl.IPCPEnrollReply{}, fmt.Errorf("enroll %s in layer %s: %w", m.Name, m.Layer, err)
	}
	d.joined(r, m.Layer, "enrolled", ctrl.IPCPBootstrapReply(rep), m.Autobind, uid)
	return rep, nil
}

func (d *Daemon) ipcpOrCreate(ctx context.Context, typ, name string) (*ipcpRec, error) {
	d.mu.Lock()
	r, ok := d.ipcps[name]
	d.mu.Unlock()
	if ok {
		if typ != "" && typ != r.typ {
			return nil, fmt.Errorf("IPCP %s is of type %s, not %s", name, r.typ, typ)
		}
		d.mu.Lock()
		layer := r.layer
		d.mu.Unlock()
		if layer != "" {
			return nil, fmt.Errorf("IPCP %s is already in layer %s", name, layer)
		}
		return r, nil
	}
	if typ == "" {
		return nil, fmt.Errorf("no IPCP named %q, and no type given to create it", name)
	}
	return d.createIPCP(ctx, typ, name)
}

func (d *Daemon) joined(r *ipcpRec, layer, state string, rep ctrl.IPCPBootstrapReply, autobind bool, uid int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	r.layer = layer
	r.state = state
	r.address = rep.Address
	r.mtu = rep.MTU
	if autobind {
		for _, n := range []string{r.name, layer} {
			d.nameLocked(n, uid).ipcps[r.name] = true
		}
	}
	d.log.Info("IPCP joined layer", "name", r.name, "layer", layer, "state", state, "address", rep.Address)
}

func (d *Daemon) listIPCPs() ctrl.IPCPList {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out ctrl.IPCPList
	for _, r := range d.ipcps {
		out.IPCPs = append(out.IPCPs, ctrl.IPCPInfo{PID: r.pid(), Name: r.name, Type: r.typ,
			Layer: r.layer, State: r.state, Address: r.address})
	}
	sort.Slice(out.IPCPs, func(i, j int) bool { return out.IPCPs[i].Name < out.IPCPs[j].Name })
	return out
}

func (d *Daemon) bind(on bool, m ctrl.Bind, cred ctrl.Cred) error {
	if m.Name == "" {
		return errors.New("bind: missing name")
	}
	var prog *program
	if on && m.Program != "" {
		// Checked before the lock: looking up the binder's account
		// may read the user database.
		p, err := exec.LookPath(m.Program)
		if err != nil {
			return fmt.Errorf("bind program: %w", err)
		}
		path := abs(p)
		as := lookupAccount(cred.UID, cred.GID)
		if err := canExec(path, as); err != nil {
			return d.deny(cred, ctrl.OpBind, fmt.Sprintf("bind program: %v", err))
		}
		if m.Auto && as.uid != d.uid && d.uid != 0 {
			return d.deny(cred, ctrl.OpBind, fmt.Sprintf("bind program %s auto: this IRMd runs as uid %d and cannot start programs as uid %d", path, d.uid, as.uid))
		}
		prog = &program{path: path, args: m.Args, auto: m.Auto, as: as}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	n := d.names[m.Name]
	if on {
		n = d.nameLocked(m.Name, cred.UID)
	}
	if n == nil {
		return fmt.Errorf("no name %q", m.Name)
	}
	switch {
	case m.Program != "":
		path := m.Program
		if on {
			n.programs[prog.path] = prog
			return nil
		}
		for k := range n.programs {
			if k == path || filepath.Base(k) == filepath.Base(path) || k == abs(path) {
				delete(n.programs, k)
				return nil
			}
		}
		return fmt.Errorf("program %s is not bound to %s", path, m.Name)
	case m.PID != 0:
		if on {
			return bindPIDLocked(n, m.PID)
		}
		if _, ok := n.pids[m.PID]; !ok {
			return fmt.Errorf("process %d is not bound to %s", m.PID, m.Name)
		}
		delete(n.pids, m.PID)
		for c := range d.clients {
			if c.cred.PID == m.PID {
				delete(c.listens, m.Name)
			}
		}
		return nil
	case m.IPCP != "":
		if on {
			if _, ok := d.ipcps[m.IPCP]; !ok {
				return fmt.Errorf("bind ipcp: no IPCP named %q", m.IPCP)
			}
			n.ipcps[m.IPCP] = true
			return nil
		}
		if !n.ipcps[m.IPCP] {
			return fmt.Errorf("IPCP %s is not bound to %s", m.IPCP, m.Name)
		}
		delete(n.ipcps, m.IPCP)
		return nil
	}
	return errors.New("bind: want program, process or ipcp")
}

func (d *Daemon) createName(m ctrl.NameCreate, uid int) error {
	if m.Name == "" {
		return errors.New("name create: empty name")
	}
	lb := m.LB
	if lb == "" {
		lb = "round-robin"
	}
	if lb != "round-robin" && lb != "spillover" {
		return fmt.Errorf("unknown load-balancing policy %q (want round-robin or spillover)", lb)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.names[m.Name]; ok {
		return fmt.Errorf("name %q already exists", m.Name)
	}
	d.nameLocked(m.Name, uid).lb = lb
	return nil
}

func (d *Daemon) register(ctx context.Context, on bool, m ctrl.NameRegister, uid int) error {
	if m.Name == "" {
		return errors.New("register: empty name")
	}
	if len(m.Layers) == 0 {
		return errors.New("register: no layer given")
	}
	for _, layer := range m.Layers {
		d.mu.Lock()
		var targets []*ipcpRec
		for _, r := range d.ipcps {
			if r.layer == layer {
				targets = append(targets, r)
			}
		}
		if on {
			d.nameLocked(m.Name, uid)
		}
		d.mu.Unlock()
		if len(targets) == 0 {
			return fmt.Errorf("no IPCP in layer %q on this host", layer)
		}
		for _, r := range targets {
			var err error
			op := ctrl.OpIPCPRegister
			if on {
				_, err = call(ctx, r, ctrl.IPCPDoRegister, ctrl.IPCPRegister{Name: m.Name})
			} else {
				op = ctrl.OpIPCPUnreg
				_, err = call(ctx, r, ctrl.IPCPDoUnregister, ctrl.IPCPUnregister{Name: m.Name})
			}
			if err != nil {
				return fmt.Errorf("%s %s in layer %s: %w", op, m.Name, layer, err)
			}
		}
		d.mu.Lock()
		if n := d.names[m.Name]; n != nil {
			if on {
				n.layers[layer] = true
			} else {
				delete(n.layers, layer)
			}
		}
		d.mu.Unlock()
	}
	return nil
}

func (d *Daemon) listNames() ctrl.NameList {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out ctrl.NameList
	for _, n := range d.names {
		ni := ctrl.NameInfo{Name: n.name, LB: n.lb}
		for l := range n.layers {
			ni.Layers = append(ni.Layers, l)
		}
		for p := range n.programs {
			ni.Programs = append(ni.Programs, p)
		}
		for p := range n.pids {
			if pidBoundLocked(n, p) {
				ni.Processes = append(ni.Processes, p)
			}
		}
		for i := range n.ipcps {
			ni.Programs = append(ni.Programs, "ipcp:"+i)
		}
		sort.Strings(ni.Layers)
		sort.Strings(ni.Programs)
		slices.Sort(ni.Processes)
		out.Names = append(out.Names, ni)
	}
	sort.Slice(out.Names, func(i, j int) bool { return out.Names[i].Name < out.Names[j].Name })
	return out
}

func (d *Daemon) showLayer(ctx context.Context, layer string) (ctrl.LayerInfo, error) {
	d.mu.Lock()
	var best *ipcpRec
	for _, r := range d.ipcps {
		if r.layer == layer && (best == nil || rank(r.typ) < rank(best.typ)) {
			best = r
		}
	}
	d.mu.Unlock()
	if best == nil {
		return ctrl.LayerInfo{}, fmt.Errorf("no IPCP in layer %q on this host", layer)
	}
	return call(ctx, best, ctrl.IPCPDoShow, ctrl.LayerShow{Layer: layer})
}

func (d *Daemon) listFlows(ctx context.Context) ctrl.FlowList {
	d.mu.Lock()
	recs := make(map[uint64]flowRec, len(d.flows))
	for id, f := range d.flows {
		recs[id] = *f
	}
	var ipcps []*ipcpRec
	for _, r := range d.ipcps {
		ipcps = append(ipcps, r)
	}
	d.mu.Unlock()
	var out ctrl.FlowList
	seen := map[uint64]bool{}
	for _, r := range ipcps {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		fl, err := call(cctx, r, ctrl.IPCPDoFlows, ctrl.None{})
		cancel()
		if err != nil {
			continue
		}
		for _, s := range fl.Flows {
			rec, ok := recs[s.ID]
			if !ok {
				continue
			}
			s.PID = rec.pid
			seen[s.ID] = true
			out.Flows = append(out.Flows, s)
		}
	}
	for id, rec := range recs {
		if !seen[id] {
			state := "pending"
			if rec.holder != nil {
				state = "direct"
			}
			out.Flows = append(out.Flows, ctrl.FlowStat{ID: id, Name: rec.name, IPCP: rec.ipcp,
				Layer: rec.layer, PID: rec.pid, QoS: rec.qos, State: state, Since: rec.since})
		}
	}
	sort.Slice(out.Flows, func(i, j int) bool { return out.Flows[i].ID < out.Flows[j].ID })
	return out
}
