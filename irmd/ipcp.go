package irmd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/ouro-net/ouro/lib/ctrl"
)

// ipcpRec is the registry entry of one IPCP process.
type ipcpRec struct {
	d       *Daemon
	name    string
	typ     string
	cmd     *exec.Cmd
	peer    *ctrl.Peer
	up      chan struct{}
	upOnce  sync.Once
	exited  chan struct{}
	created time.Time

	// Guarded by d.mu.
	layer   string
	state   string
	address string
	mtu     int
}

func (r *ipcpRec) pid() int {
	if r.cmd != nil && r.cmd.Process != nil {
		return r.cmd.Process.Pid
	}
	return 0
}

// rank orders IPCP types for flow allocation: the nearest first.
func rank(typ string) int {
	switch typ {
	case "local":
		return 0
	case "unicast":
		return 1
	case "broadcast":
		return 2
	}
	return 3
}

func (d *Daemon) knownType(typ string) bool { return slices.Contains(d.cfg.Types, typ) }

// createIPCP spawns an IPCP process and waits until it reports up.
func (d *Daemon) createIPCP(ctx context.Context, typ, name string) (*ipcpRec, error) {
	if name == "" {
		return nil, errors.New("IPCP name is empty")
	}
	if !d.knownType(typ) {
		return nil, fmt.Errorf("unknown IPCP type %q (want one of %v)", typ, d.cfg.Types)
	}
	d.mu.Lock()
	if _, ok := d.ipcps[name]; ok {
		d.mu.Unlock()
		return nil, fmt.Errorf("an IPCP named %q already exists", name)
	}
	r := &ipcpRec{d: d, name: name, typ: typ, up: make(chan struct{}), exited: make(chan struct{}),
		state: "starting", created: time.Now()}
	d.ipcps[name] = r
	d.mu.Unlock()

	fail := func(err error) (*ipcpRec, error) {
		d.mu.Lock()
		delete(d.ipcps, name)
		d.mu.Unlock()
		return nil, err
	}
	conn, child, err := ctrl.Pair()
	if err != nil {
		return fail(err)
	}
	cmd := exec.Command(d.cfg.Exe, IPCPArgs(typ, name, d.cfg.RunDir, d.cfg.ChildLogLevel)...)
	cmd.ExtraFiles = []*os.File{child}
	cmd.Stdout = os.Stderr
	cmd.Stderr = os.Stderr
	cmd.Env = append(os.Environ(), "OURO_RUNDIR="+d.cfg.RunDir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		conn.Close()
		child.Close()
		return fail(fmt.Errorf("start IPCP process: %w", err))
	}
	child.Close()
	r.cmd = cmd
	r.peer = ctrl.NewPeer(conn, r.handle, d.log.Named("ipcp."+name))
	d.wg.Add(1)
	go r.supervise()

	select {
	case <-r.up:
	case <-r.exited:
		return nil, fmt.Errorf("IPCP %s exited during start-up: %v", name, cmd.ProcessState)
	case <-ctx.Done():
		r.stop(time.Second)
		return nil, fmt.Errorf("IPCP %s did not start: %w", name, ctx.Err())
	case <-time.After(10 * time.Second):
		r.stop(time.Second)
		return nil, fmt.Errorf("IPCP %s did not report up within 10s", name)
	}
	d.mu.Lock()
	r.state = "created"
	d.mu.Unlock()
	d.log.Info("IPCP created", "name", name, "type", typ, "pid", r.pid())
	return r, nil
}

// supervise waits for the IPCP process to exit and cleans up after it.
func (r *ipcpRec) supervise() {
	defer r.d.wg.Done()
	err := r.cmd.Wait()
	r.peer.Close()
	r.peer.Wait()
	d := r.d
	d.mu.Lock()
	delete(d.ipcps, r.name)
	down := 0
	var direct []*flowRec
	for id, f := range d.flows {
		if f.ipcp == r.name {
			delete(d.flows, id)
			down++
			if f.holder != nil {
				direct = append(direct, f)
			}
		}
	}
	layer := r.layer
	var unreg []string
	if layer != "" && !d.layerHasIPCP(layer) {
		for _, n := range d.names {
			if n.layers[layer] {
				delete(n.layers, layer)
				unreg = append(unreg, n.name)
			}
		}
	}
	d.mu.Unlock()
	// Direct flows have no IPCP whose death closes them: tell their
	// holders, so their flows report down as any other would.
	for _, f := range direct {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, files, _ := ctrl.Invoke(ctx, f.holder.peer, ctrl.DownFlow, ctrl.FlowDown{ID: f.id})
		ctrl.CloseFiles(files)
		cancel()
	}
	close(r.exited)
	status := "exited"
	if err != nil {
		status = err.Error()
	}
	d.log.Info("IPCP gone", "name", r.name, "pid", r.pid(), "status", status,
		"flows_down", down, "names_unregistered", len(unreg))
}

// layerHasIPCP reports whether any IPCP is in layer; d.mu held.
func (d *Daemon) layerHasIPCP(layer string) bool {
	for _, r := range d.ipcps {
		if r.layer == layer {
			return true
		}
	}
	return false
}

// stop asks the IPCP to exit, killing it after grace.
func (r *ipcpRec) stop(grace time.Duration) {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.exited:
	case <-time.After(grace):
		r.cmd.Process.Kill()
		<-r.exited
	}
}
