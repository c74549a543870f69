package irmd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/ouro-net/ouro/lib/ctrl"
)

// The dispatch tables: one small function per operation of
// ctrl.ClientOps (public socket) and ctrl.IPCPOps (an IPCP's own
// channel). Each entry decodes the request into the operation's request
// type, passes the access check of the operation's class (authorize,
// access.go) and calls its function; the function's typed reply is what
// the caller receives.

// route is one entry of a dispatch table.
type route[C any] struct {
	access ctrl.Access
	serve  func(ctx context.Context, c C, req *ctrl.Request) (any, []*os.File, error)
}

// fn is the typed body of an operation served to a caller of type C.
type fn[C, Req, Resp any] func(ctx context.Context, c C, m Req) (Resp, []*os.File, error)

// entry makes the route of op, served by f after check passes.
func entry[C, Req, Resp any](op ctrl.Op[Req, Resp], check func(c C, op string, class ctrl.Access, m any, decodeErr error) error, f fn[C, Req, Resp]) (string, route[C]) {
	return op.Name, route[C]{access: op.Access, serve: func(ctx context.Context, c C, req *ctrl.Request) (any, []*os.File, error) {
		var m Req
		derr := req.Decode(&m)
		if err := check(c, op.Name, op.Access, m, derr); err != nil {
			return nil, nil, err
		}
		if derr != nil {
			return nil, nil, derr
		}
		resp, files, err := f(ctx, c, m)
		if err != nil {
			return nil, nil, err
		}
		return resp, files, nil
	}}
}

// ok wraps an operation without a reply.
func ok[C, Req any](f func(ctx context.Context, c C, m Req) error) fn[C, Req, ctrl.None] {
	return func(ctx context.Context, c C, m Req) (ctrl.None, []*os.File, error) {
		return ctrl.None{}, nil, f(ctx, c, m)
	}
}

// value wraps an operation whose reply carries no descriptor.
func value[C, Req, Resp any](f func(ctx context.Context, c C, m Req) (Resp, error)) fn[C, Req, Resp] {
	return func(ctx context.Context, c C, m Req) (Resp, []*os.File, error) {
		r, err := f(ctx, c, m)
		return r, nil, err
	}
}

// clientRoutes is the dispatch table of the public socket.
func (d *Daemon) clientRoutes() map[string]route[*client] {
	t := map[string]route[*client]{}
	add := func(name string, r route[*client]) { t[name] = r }
	chk := d.authorize
	add(entry(ctrl.CreateIPCP, chk, value(d.opCreateIPCP)))
	add(entry(ctrl.BootstrapIPCP, chk, value(d.opBootstrap)))
	add(entry(ctrl.EnrollIPCP, chk, value(d.opEnroll)))
	add(entry(ctrl.ConnectIPCP, chk, ok(func(ctx context.Context, _ *client, m ctrl.IPCPConnect) error {
		r, err := d.ipcp(m.Name)
		if err != nil {
			return err
		}
		_, err = call(ctx, r, ctrl.IPCPDoConnect, m)
		return err
	})))
	add(entry(ctrl.DisconnectIPCP, chk, ok(func(ctx context.Context, _ *client, m ctrl.IPCPDisconnect) error {
		r, err := d.ipcp(m.Name)
		if err != nil {
			return err
		}
		_, err = call(ctx, r, ctrl.IPCPDoDisconnect, m)
		return err
	})))
	add(entry(ctrl.ListIPCPs, chk, value(func(context.Context, *client, ctrl.None) (ctrl.IPCPList, error) {
		return d.listIPCPs(), nil
	})))
	add(entry(ctrl.DestroyIPCP, chk, ok(d.opDestroy)))
	add(entry(ctrl.BindName, chk, ok(func(ctx context.Context, c *client, m ctrl.Bind) error {
		return d.opBind(ctx, c, true, m)
	})))
	add(entry(ctrl.UnbindName, chk, ok(func(ctx context.Context, c *client, m ctrl.Unbind) error {
		return d.opBind(ctx, c, false, ctrl.Bind(m))
	})))
	add(entry(ctrl.CreateName, chk, ok(func(_ context.Context, c *client, m ctrl.NameCreate) error {
		return d.createName(m, c.cred.UID)
	})))
	add(entry(ctrl.RegisterName, chk, ok(func(ctx context.Context, c *client, m ctrl.NameRegister) error {
		return d.register(ctx, true, m, c.cred.UID)
	})))
	add(entry(ctrl.UnregisterName, chk, ok(func(ctx context.Context, c *client, m ctrl.NameUnregister) error {
		return d.register(ctx, false, ctrl.NameRegister(m), c.cred.UID)
	})))
	add(entry(ctrl.ListNames, chk, value(func(context.Context, *client, ctrl.None) (ctrl.NameList, error) {
		return d.listNames(), nil
	})))
	add(entry(ctrl.ShowLayer, chk, value(func(ctx context.Context, _ *client, m ctrl.LayerShow) (ctrl.LayerInfo, error) {
		return d.showLayer(ctx, m.Layer)
	})))
	add(entry(ctrl.ListFlows, chk, value(func(ctx context.Context, _ *client, _ ctrl.None) (ctrl.FlowList, error) {
		return d.listFlows(ctx), nil
	})))
	add(entry(ctrl.AllocFlow, chk, func(ctx context.Context, c *client, m ctrl.FlowAlloc) (ctrl.FlowInfo, []*os.File, error) {
		fi, f, err := d.alloc(ctx, c, m)
		if err != nil {
			return fi, nil, err
		}
		return fi, []*os.File{f}, nil
	}))
	add(entry(ctrl.EndFlow, chk, ok(func(_ context.Context, c *client, m ctrl.FlowEnd) error {
		d.mu.Lock()
		if f := d.flows[m.ID]; f != nil && f.holder == c {
			delete(d.flows, m.ID)
		}
		d.mu.Unlock()
		return nil
	})))
	add(entry(ctrl.ResolveName, chk, value(func(ctx context.Context, _ *client, m ctrl.NameResolve) (ctrl.NameResolveReply, error) {
		// Every layer: an IPCP asks over its own channel
		// (ipcpd.resolve), which leaves out its layer.
		return d.resolveLayers(ctx, "", m.Name)
	})))
	add(entry(ctrl.ListenName, chk, ok(d.opListen)))
	add(entry(ctrl.UnlistenName, chk, ok(func(_ context.Context, c *client, m ctrl.FlowUnlisten) error {
		if m.Name == "" {
			return errors.New("unlisten: empty name")
		}
		d.mu.Lock()
		delete(c.listens, m.Name)
		d.mu.Unlock()
		return nil
	})))
	return t
}

// ipcpRoutes is the dispatch table of an IPCP's own channel: the IRMd
// knows the caller by the channel, never by its pid.
func (d *Daemon) ipcpRoutes() map[string]route[*ipcpRec] {
	t := map[string]route[*ipcpRec]{}
	add := func(name string, r route[*ipcpRec]) { t[name] = r }
	// The channel itself is the credential.
	chk := func(*ipcpRec, string, ctrl.Access, any, error) error { return nil }
	add(entry(ctrl.IPCPUpOp, chk, ok(func(_ context.Context, r *ipcpRec, _ ctrl.IPCPUp) error {
		r.upOnce.Do(func() { close(r.up) })
		return nil
	})))
	add(entry(ctrl.IPCPArriveOp, chk, func(ctx context.Context, r *ipcpRec, a ctrl.IPCPArrive) (ctrl.IPCPAllocReply, []*os.File, error) {
		rep, f, err := d.arrive(ctx, r, a)
		if err != nil {
			return rep, nil, err
		}
		return rep, []*os.File{f}, nil
	}))
	add(entry(ctrl.IPCPFlowEndOp, chk, ok(func(_ context.Context, r *ipcpRec, e ctrl.IPCPFlowEnd) error {
		d.mu.Lock()
		delete(d.flows, e.ID)
		d.mu.Unlock()
		return nil
	})))
	add(entry(ctrl.IPCPResolveOp, chk, value(func(ctx context.Context, r *ipcpRec, m ctrl.NameResolve) (ctrl.NameResolveReply, error) {
		d.mu.Lock()
		own := r.layer
		d.mu.Unlock()
		return d.resolveLayers(ctx, own, m.Name)
	})))
	add(entry(ctrl.IPCPDialOp, chk, func(_ context.Context, r *ipcpRec, _ ctrl.None) (ctrl.None, []*os.File, error) {
		f, err := d.dial(r)
		if err != nil {
			return ctrl.None{}, nil, err
		}
		return ctrl.None{}, []*os.File{f}, nil
	}))
	return t
}

// dispatch serves one request from a table.
func dispatch[C any](ctx context.Context, table map[string]route[C], c C, req *ctrl.Request) (any, []*os.File, error) {
	rt, found := table[req.Op]
	if !found {
		return nil, nil, fmt.Errorf("unknown operation %q", req.Op)
	}
	return rt.serve(ctx, c, req)
}

func (c *client) handle(ctx context.Context, req *ctrl.Request) (any, []*os.File, error) {
	return dispatch(ctx, c.d.routes, c, req)
}

// handle serves the requests an IPCP makes of the IRMd.
func (r *ipcpRec) handle(ctx context.Context, req *ctrl.Request) (any, []*os.File, error) {
	return dispatch(ctx, r.d.ipcpTable, r, req)
}

// call makes op on an IPCP.
func call[Req, Resp any](ctx context.Context, r *ipcpRec, op ctrl.Op[Req, Resp], m Req) (Resp, error) {
	resp, files, err := ctrl.Invoke(ctx, r.peer, op, m)
	ctrl.CloseFiles(files)
	return resp, err
}

func (d *Daemon) opCreateIPCP(ctx context.Context, _ *client, m ctrl.IPCPCreate) (ctrl.IPCPInfo, error) {
	r, err := d.createIPCP(ctx, m.Type, m.Name)
	if err != nil {
		return ctrl.IPCPInfo{}, err
	}
	return ctrl.IPCPInfo{PID: r.pid(), Name: r.name, Type: r.typ, State: "created"}, nil
}

func (d *Daemon) opBootstrap(ctx context.Context, c *client, m ctrl.IPCPBootstrap) (ctrl.IPCPBootstrapReply, error) {
	return d.bootstrap(ctx, m, c.cred.UID)
}

func (d *Daemon) opEnroll(ctx context.Context, c *client, m ctrl.IPCPEnroll) (ctrl.IPCPEnrollReply, error) {
	return d.enroll(ctx, m, c.cred.UID)
}

func (d *Daemon) opDestroy(_ context.Context, _ *client, m ctrl.IPCPRef) error {
	r, err := d.ipcp(m.Name)
	if err != nil {
		return err
	}
	r.stop(3 * time.Second)
	return nil
}

func (d *Daemon) opBind(ctx context.Context, c *client, on bool, m ctrl.Bind) error {
	if err := d.bind(on, m, c.cred); err != nil {
		return err
	}
	if m.IPCP == "" {
		return nil
	}
	r, err := d.ipcp(m.IPCP)
	if err != nil {
		return err
	}
	if on {
		_, err = call(ctx, r, ctrl.IPCPDoBind, ctrl.IPCPBind{Name: m.Name})
	} else {
		_, err = call(ctx, r, ctrl.IPCPDoUnbind, ctrl.IPCPUnbind{Name: m.Name})
	}
	return err
}

func (d *Daemon) opListen(_ context.Context, c *client, m ctrl.FlowListen) error {
	if m.Name == "" {
		return errors.New("listen: empty name")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	// Checked again under the same lock as the claim: the name may have
	// been taken since authorize.
	if why := d.listenDeniesLocked(c.cred, m.Name); why != "" {
		return d.deny(c.cred, ctrl.OpFlowListen, why)
	}
	if err := bindPIDLocked(d.nameLocked(m.Name, c.cred.UID), c.cred.PID); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	c.listens[m.Name] = true
	c.since = time.Now()
	close(d.listenCh)
	d.listenCh = make(chan struct{})
	return nil
}

// ownLayer returns the layer of the IPCP whose own connection c is
// (ipcpd.dial), or "" for a connection to the public socket, whatever
// process made it.
func (d *Daemon) ownLayer(c *client) string {
	if c.ipcp == nil {
		return ""
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return c.ipcp.layer
}

// dial makes a control connection of IPCP r's own (ipcpd.dial): the
// IRMd serves one end as a client known to be r, with r's process as
// its credentials (r runs as the daemon's user), and returns the other
// end for r.
func (d *Daemon) dial(r *ipcpRec) (*os.File, error) {
	conn, end, err := ctrl.Pair()
	if err != nil {
		return nil, err
	}
	cred := ctrl.Cred{PID: r.pid(), UID: d.uid, GID: os.Getegid()}
	if _, why, _ := d.addClient(conn, cred, r); why != "" {
		end.Close()
		return nil, fmt.Errorf("connection for IPCP %s refused: %s", r.name, why)
	}
	return end, nil
}

// resolveLayers lists the layers other than own that reach name.
func (d *Daemon) resolveLayers(ctx context.Context, own, name string) (ctrl.NameResolveReply, error) {
	var rep ctrl.NameResolveReply
	cands, err := d.resolve(ctx, own, ctrl.FlowAlloc{Name: name, All: true})
	if err != nil {
		return rep, err
	}
	seen := map[string]bool{}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, r := range cands {
		if !seen[r.layer] {
			seen[r.layer] = true
			rep.Layers = append(rep.Layers, r.layer)
		}
	}
	return rep, nil
}
