package ipcpd

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/ouro-net/ouro/lib/ctrl"
	"github.com/ouro-net/ouro/lib/pipe"
)

// The IPCP's side of its control channel: one small function per
// operation of ctrl.IRMdToIPCPOps, dispatched by name, each decoding the
// request into the operation's own type.

type route func(ctx context.Context, req *ctrl.Request) (any, []*os.File, error)

// serve makes the route of op, served by f (which may take descriptors
// from req).
func serve[Req, Resp any](op ctrl.Op[Req, Resp], f func(ctx context.Context, m Req, req *ctrl.Request) (Resp, error)) (string, route) {
	return op.Name, func(ctx context.Context, req *ctrl.Request) (any, []*os.File, error) {
		var m Req
		if err := req.Decode(&m); err != nil {
			return nil, nil, err
		}
		resp, err := f(ctx, m, req)
		if err != nil {
			return nil, nil, err
		}
		return resp, nil, nil
	}
}

// routes is the table of operations the IRMd calls on this IPCP.
func (h *Host) routes() map[string]route {
	t := map[string]route{}
	add := func(name string, r route) { t[name] = r }
	none := ctrl.None{}
	add(serve(ctrl.IPCPDoBootstrap, func(ctx context.Context, b ctrl.IPCPBootstrap, _ *ctrl.Request) (ctrl.IPCPBootstrapReply, error) {
		rep, err := h.ipcp.Bootstrap(ctx, b.Layer, b.Params)
		if err != nil {
			return rep, err
		}
		h.layer.Store(b.Layer)
		h.Log.Info("bootstrapped", "layer", b.Layer)
		if b.Autobind {
			if err := h.autobind(ctx, b.Layer); err != nil {
				return rep, err
			}
		}
		return rep, nil
	}))
	add(serve(ctrl.IPCPDoEnroll, func(ctx context.Context, e ctrl.IPCPEnroll, _ *ctrl.Request) (ctrl.IPCPEnrollReply, error) {
		en, ok := h.ipcp.(Enroller)
		if !ok {
			return ctrl.IPCPEnrollReply{}, fmt.Errorf("IPCP %s (type %s) cannot enroll: bootstrap it instead", h.Name, h.Type)
		}
		var rep ctrl.IPCPBootstrapReply
		var err error
		if e.Secret != "" {
			se, ok := h.ipcp.(SecretEnroller)
			if !ok {
				return ctrl.IPCPEnrollReply{}, fmt.Errorf("IPCP %s (type %s) has no layer secrets", h.Name, h.Type)
			}
			rep, err = se.EnrollSecret(ctx, e.Layer, e.Dst, e.Secret)
		} else {
			rep, err = en.Enroll(ctx, e.Layer, e.Dst)
		}
		if err != nil {
			return ctrl.IPCPEnrollReply{}, err
		}
		h.layer.Store(e.Layer)
		if e.Autobind {
			if err := h.autobind(ctx, e.Layer); err != nil {
				return ctrl.IPCPEnrollReply{}, err
			}
		}
		return ctrl.IPCPEnrollReply(rep), nil
	}))
	add(serve(ctrl.IPCPDoConnect, func(ctx context.Context, c ctrl.IPCPConnect, _ *ctrl.Request) (ctrl.None, error) {
		cn, err := h.connector()
		if err != nil {
			return none, err
		}
		return none, cn.Connect(ctx, c)
	}))
	add(serve(ctrl.IPCPDoDisconnect, func(ctx context.Context, c ctrl.IPCPDisconnect, _ *ctrl.Request) (ctrl.None, error) {
		cn, err := h.connector()
		if err != nil {
			return none, err
		}
		return none, cn.Disconnect(ctx, ctrl.IPCPConnect(c))
	}))
	add(serve(ctrl.IPCPDoRegister, func(ctx context.Context, q ctrl.IPCPRegister, _ *ctrl.Request) (ctrl.None, error) {
		return none, h.ipcp.Register(ctx, q.Name)
	}))
	add(serve(ctrl.IPCPDoUnregister, func(ctx context.Context, q ctrl.IPCPUnregister, _ *ctrl.Request) (ctrl.None, error) {
		return none, h.ipcp.Unregister(ctx, q.Name)
	}))
	add(serve(ctrl.IPCPDoBind, func(ctx context.Context, q ctrl.IPCPBind, _ *ctrl.Request) (ctrl.None, error) {
		b, err := h.binder()
		if err != nil {
			return none, err
		}
		return none, b.Bind(ctx, q.Name)
	}))
	add(serve(ctrl.IPCPDoUnbind, func(ctx context.Context, q ctrl.IPCPUnbind, _ *ctrl.Request) (ctrl.None, error) {
		b, err := h.binder()
		if err != nil {
			return none, err
		}
		return none, b.Unbind(ctx, q.Name)
	}))
	add(serve(ctrl.IPCPDoQuery, func(ctx context.Context, q ctrl.IPCPQuery, _ *ctrl.Request) (ctrl.IPCPQueryReply, error) {
		ok, err := h.ipcp.Query(ctx, q.Name)
		return ctrl.IPCPQueryReply{Reachable: ok}, err
	}))
	add(serve(ctrl.IPCPDoAlloc, func(ctx context.Context, fi ctrl.FlowInfo, req *ctrl.Request) (ctrl.IPCPAllocReply, error) {
		file := req.TakeFile(0)
		if file == nil {
			return ctrl.IPCPAllocReply{}, errors.New("alloc: no flow descriptor")
		}
		p, err := pipe.New(file)
		if err != nil {
			return ctrl.IPCPAllocReply{}, err
		}
		f := &Flow{ID: fi.ID, Name: fi.Name, QoS: fi.QoS, Pipe: p}
		h.addFlow(f)
		mtu, err := h.ipcp.Alloc(ctx, f)
		if err != nil {
			h.mu.Lock()
			delete(h.flows, f.ID)
			h.mu.Unlock()
			p.Close()
			return ctrl.IPCPAllocReply{}, err
		}
		return ctrl.IPCPAllocReply{ID: f.ID, MTU: mtu}, nil
	}))
	add(serve(ctrl.IPCPDoShow, func(ctx context.Context, _ ctrl.LayerShow, _ *ctrl.Request) (ctrl.LayerInfo, error) {
		return h.layerInfo(ctx)
	}))
	add(serve(ctrl.IPCPDoFlows, func(context.Context, ctrl.None, *ctrl.Request) (ctrl.FlowList, error) {
		var out ctrl.FlowList
		for _, f := range h.Flows() {
			st := ctrl.FlowStat{
				ID: f.ID, Name: f.Name, IPCP: h.Name, Layer: h.Layer(), QoS: f.QoS.String(),
				State: f.state(), Since: f.since,
				PktsIn: f.PktsIn.Load(), PktsOut: f.PktsOut.Load(),
				BytesIn: f.BytesIn.Load(), BytesOut: f.BytesOut.Load(), Drops: f.Drops.Load(),
			}
			if f.Labelled.Load() {
				st.Path = &ctrl.FlowPath{Label: uint8(f.Label.Load()), Bends: f.LabelBends.Load()}
			}
			out.Flows = append(out.Flows, st)
		}
		return out, nil
	}))
	return t
}

// handle serves one request of the IRMd from the table.
func (h *Host) handle(ctx context.Context, req *ctrl.Request) (any, []*os.File, error) {
	r, ok := h.table[req.Op]
	if !ok {
		return nil, nil, fmt.Errorf("IPCP %s: unknown operation %q", h.Name, req.Op)
	}
	return r(ctx, req)
}
