package irmd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/ouro-net/ouro/lib/ctrl"
	"github.com/ouro-net/ouro/lib/pipe"
	"github.com/ouro-net/ouro/lib/rundir"
)

// queryTimeout bounds how long the IRMd waits for IPCPs to resolve a
// name during allocation.
const queryTimeout = 3 * time.Second

// autoStartWait bounds how long an auto-started program has to listen.
const autoStartWait = 5 * time.Second

// alloc serves flow.alloc: it finds an IPCP that reaches the name, hands
// it one end of a new data channel and returns the other end.
func (d *Daemon) alloc(ctx context.Context, c *client, m ctrl.FlowAlloc) (ctrl.FlowInfo, *os.File, error) {
	if m.Name == "" {
		return ctrl.FlowInfo{}, nil, errors.New("allocate: empty name")
	}
	cands, err := d.resolve(ctx, d.ownLayer(c), m)
	if err != nil {
		return ctrl.FlowInfo{}, nil, err
	}
	var errs []string
	for _, r := range cands {
		if r.typ == "local" {
			fi, f, err := d.allocDirect(ctx, c, r, m)
			if err != nil {
				errs = append(errs, fmt.Sprintf("layer %s: %v", r.layer, err))
				continue
			}
			return fi, f, nil
		}
		appEnd, ipcpEnd, err := pipe.FilePair()
		if err != nil {
			return ctrl.FlowInfo{}, nil, err
		}
		d.mu.Lock()
		d.nextFlow++
		id := d.nextFlow
		layer := r.layer
		d.mu.Unlock()
		fi := ctrl.FlowInfo{ID: id, Name: m.Name, QoS: m.QoS, Layer: layer, IPCP: r.name}
		rep, files, err := ctrl.Invoke(ctx, r.peer, ctrl.IPCPDoAlloc, fi, ipcpEnd)
		ctrl.CloseFiles(files)
		ipcpEnd.Close()
		if err != nil {
			appEnd.Close()
			errs = append(errs, fmt.Sprintf("layer %s: %v", layer, err))
			continue
		}
		fi.MTU = rep.MTU
		d.mu.Lock()
		d.flows[id] = &flowRec{id: id, name: m.Name, ipcp: r.name, layer: layer, pid: c.cred.PID,
			qos: m.QoS.String(), since: time.Now()}
		d.mu.Unlock()
		d.log.Debug("flow allocated", "id", id, "name", m.Name, "layer", layer, "pid", c.cred.PID)
		return fi, appEnd, nil
	}
	return ctrl.FlowInfo{}, nil, fmt.Errorf("allocate flow to %q: %s", m.Name, strings.Join(errs, "; "))
}

// allocDirect connects the allocating process straight to a process
// accepting the name on this host: the IPCP of the local layer vouches
// for the name but is not on the path. Both processes keep their control
// connections, over which the IRMd tells them if the layer goes away.
func (d *Daemon) allocDirect(ctx context.Context, c *client, r *ipcpRec, m ctrl.FlowAlloc) (ctrl.FlowInfo, *os.File, error) {
	d.mu.Lock()
	mtu, layer := r.mtu, r.layer
	d.mu.Unlock()
	rep, end, acceptor, err := d.arriveTo(ctx, r, ctrl.IPCPArrive{Name: m.Name, QoS: m.QoS, MTU: mtu}, true)
	if err != nil {
		return ctrl.FlowInfo{}, nil, err
	}
	d.mu.Lock()
	d.nextFlow++
	id := d.nextFlow
	d.flows[id] = &flowRec{id: id, name: m.Name, ipcp: r.name, layer: layer, pid: c.cred.PID,
		qos: m.QoS.String(), since: time.Now(), holder: c}
	if f := d.flows[rep.ID]; f != nil {
		f.holder = acceptor
	}
	d.mu.Unlock()
	d.log.Debug("direct flow", "id", id, "peer", rep.ID, "name", m.Name, "layer", layer)
	return ctrl.FlowInfo{ID: id, Name: m.Name, QoS: m.QoS, MTU: rep.MTU, Layer: layer, IPCP: r.name, Direct: true}, end, nil
}

// resolve returns the IPCPs that report name reachable, nearest first,
// leaving out those of layer own (the caller's, when it is an IPCP).
func (d *Daemon) resolve(ctx context.Context, own string, m ctrl.FlowAlloc) ([]*ipcpRec, error) {
	d.mu.Lock()
	var all []*ipcpRec
	pinned := false
	for _, r := range d.ipcps {
		if r.layer == "" || r.layer == own {
			continue
		}
		if m.Layer != "" {
			if r.layer != m.Layer {
				continue
			}
			pinned = true
		}
		all = append(all, r)
	}
	d.mu.Unlock()
	if m.Layer != "" && !pinned {
		return nil, fmt.Errorf("allocate flow to %q: no IPCP in layer %q on this host", m.Name, m.Layer)
	}
	if len(all) == 0 {
		return nil, fmt.Errorf("allocate flow to %q: no layer on this host (bootstrap or enroll an IPCP first)", m.Name)
	}
	sort.Slice(all, func(i, j int) bool {
		if rank(all[i].typ) != rank(all[j].typ) {
			return rank(all[i].typ) < rank(all[j].typ)
		}
		return all[i].name < all[j].name
	})
	qctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	type answer struct {
		i  int
		ok bool
	}
	ch := make(chan answer, len(all))
	for i, r := range all {
		go func() {
			rep, err := call(qctx, r, ctrl.IPCPDoQuery, ctrl.IPCPQuery{Name: m.Name})
			ch <- answer{i, err == nil && rep.Reachable}
		}()
	}
	// Collect answers; for an allocation, stop early once every IPCP
	// ranked before the best positive answer has answered.
	oks := make([]bool, len(all))
	answered := make([]bool, len(all))
	for n := 0; n < len(all); n++ {
		a := <-ch
		answered[a.i] = true
		oks[a.i] = a.ok
		done := false
		for i := range all {
			if m.All {
				break
			}
			if !answered[i] {
				break
			}
			if oks[i] {
				done = true
				break
			}
		}
		if done {
			break
		}
	}
	var out []*ipcpRec
	for i, r := range all {
		if oks[i] {
			out = append(out, r)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("allocate flow to %q: no layer reaches that name (register it with: irm name register %s layer LAYER)", m.Name, m.Name)
	}
	return out, nil
}

// arrive serves an IPCP's request for an acceptor of a name: it picks a
// listening process by the name's policy and hands it one end of a new
// data channel, returning the other end for the IPCP.
func (d *Daemon) arrive(ctx context.Context, r *ipcpRec, a ctrl.IPCPArrive) (ctrl.IPCPAllocReply, *os.File, error) {
	rep, f, _, err := d.arriveTo(ctx, r, a, false)
	return rep, f, err
}

// arriveTo is arrive; it also returns the accepting client, and with
// direct set it tells the acceptor that the flow has no IPCP under it.
func (d *Daemon) arriveTo(ctx context.Context, r *ipcpRec, a ctrl.IPCPArrive, direct bool) (ctrl.IPCPAllocReply, *os.File, *client, error) {
	deadline := time.Now().Add(autoStartWait)
	started := false
	for {
		d.mu.Lock()
		n := d.names[a.Name]
		cands := d.acceptorsLocked(n)
		var prog *program
		if n != nil {
			for _, p := range n.programs {
				if p.auto {
					prog = p
					break
				}
			}
		}
		wake := d.listenCh
		layer := r.layer
		d.mu.Unlock()
		for _, c := range cands {
			appEnd, ipcpEnd, err := pipe.FilePair()
			if err != nil {
				return ctrl.IPCPAllocReply{}, nil, nil, err
			}
			d.mu.Lock()
			d.nextFlow++
			id := d.nextFlow
			d.mu.Unlock()
			fi := ctrl.FlowInfo{ID: id, Name: a.Name, QoS: a.QoS, MTU: a.MTU, Layer: layer, IPCP: r.name, Direct: direct}
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			_, files, err := ctrl.Invoke(cctx, c.peer, ctrl.ArriveFlow, fi, appEnd)
			ctrl.CloseFiles(files)
			cancel()
			appEnd.Close()
			if err != nil {
				ipcpEnd.Close()
				d.log.Debug("acceptor refused flow", "name", a.Name, "pid", c.cred.PID, "error", err)
				continue
			}
			d.mu.Lock()
			d.flows[id] = &flowRec{id: id, name: a.Name, ipcp: r.name, layer: layer, pid: c.cred.PID,
				qos: a.QoS.String(), since: time.Now()}
			d.mu.Unlock()
			return ctrl.IPCPAllocReply{ID: id, MTU: a.MTU}, ipcpEnd, c, nil
		}
		if prog == nil || time.Now().After(deadline) {
			if n == nil {
				return ctrl.IPCPAllocReply{}, nil, nil, fmt.Errorf("no process accepts flows for %q on this host", a.Name)
			}
			return ctrl.IPCPAllocReply{}, nil, nil, fmt.Errorf("no process accepts flows for %q on this host (none listening)", a.Name)
		}
		if !started {
			if err := d.startProgram(prog, a.Name); err != nil {
				return ctrl.IPCPAllocReply{}, nil, nil, err
			}
			started = true
		}
		select {
		case <-wake:
		case <-time.After(time.Until(deadline)):
		case <-ctx.Done():
			return ctrl.IPCPAllocReply{}, nil, nil, ctx.Err()
		}
	}
}

// acceptorsLocked lists the processes listening on n, ordered by its
// load-balancing policy; d.mu held.
func (d *Daemon) acceptorsLocked(n *nameRec) []*client {
	if n == nil {
		return nil
	}
	var cs []*client
	for c := range d.clients {
		if c.listens[n.name] {
			cs = append(cs, c)
		}
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].since.Before(cs[j].since) })
	if n.lb == "round-robin" && len(cs) > 1 {
		k := n.rr % len(cs)
		n.rr++
		cs = append(cs[k:], cs[:k]...)
	}
	return cs
}

// startProgram starts a program bound with auto to serve name. Its
// process is bound to name while it runs, so it may listen there even
// when the program is a script (whose process runs the interpreter).
func (d *Daemon) startProgram(p *program, name string) error {
	cmd := exec.Command(p.path, p.args...)
	self := p.as.uid == d.uid
	cmd.Env = programEnv(p.as, self, rundir.EnvVar+"="+d.cfg.RunDir)
	if !self {
		// The program runs as the user who bound it, never with the
		// daemon's rights.
		groups := make([]uint32, len(p.as.groups))
		for i, g := range p.as.groups {
			groups[i] = uint32(g)
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{
			Uid: uint32(p.as.uid), Gid: uint32(p.as.gid), Groups: groups}}
		cmd.Dir = "/"
	}
	cmd.Stdout = nil
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("auto-start %s: %w", p.path, err)
	}
	d.log.Info("auto-started program", "path", p.path, "pid", cmd.Process.Pid, "uid", p.as.uid)
	pid := cmd.Process.Pid
	d.mu.Lock()
	d.progs[pid] = cmd.Process
	if err := bindPIDLocked(d.nameLocked(name, p.as.uid), pid); err != nil {
		d.log.Warn("auto-started program not bound", "path", p.path, "pid", pid, "err", err)
	}
	d.mu.Unlock()
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		cmd.Wait()
		d.mu.Lock()
		delete(d.progs, pid)
		if n := d.names[name]; n != nil {
			delete(n.pids, pid)
		}
		d.mu.Unlock()
	}()
	return nil
}
