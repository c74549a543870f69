// Package irmclient is the typed client of the IRMd's control socket:
// one method per operation of the table in lib/ctrl (ctrl.ClientOps),
// each taking and returning that operation's own types. The irm CLI,
// internal/topo and internal/testenv manage hosts through it;
// applications that only allocate and accept flows use package flow.
//
// Each call opens a fresh connection, makes one request and closes it,
// so a Client holds nothing and is safe for concurrent use. Errors the
// IRMd reports come back as plain errors carrying its message.
package irmclient

import (
	"context"
	"errors"

	"github.com/ouro-net/ouro/flow"
	"github.com/ouro-net/ouro/lib/ctrl"
	"github.com/ouro-net/ouro/lib/qos"
)

// Client talks to the IRMd of one run directory.
type Client struct {
	dir string
}

// New returns a client of the IRMd of run directory dir (empty: the
// default, as flow.WithRunDir resolves it).
func New(dir string) *Client { return &Client{dir: dir} }

// Dir returns the run directory the client talks to.
func (c *Client) Dir() string { return c.dir }

// Do makes one operation of the table on the IRMd of dir, on a fresh
// connection. Descriptors in the reply are closed (use Alloc for
// flows).
func Do[Req, Resp any](ctx context.Context, dir string, op ctrl.Op[Req, Resp], req Req) (Resp, error) {
	var zero Resp
	conn, err := flow.Dial(dir)
	if err != nil {
		return zero, err
	}
	peer := ctrl.NewPeer(conn, nil, nil)
	defer func() {
		peer.Close()
		peer.Wait()
	}()
	resp, files, err := ctrl.Invoke(ctx, peer, op, req)
	ctrl.CloseFiles(files)
	var re *ctrl.RemoteError
	if errors.As(err, &re) {
		return zero, errors.New(re.Msg)
	}
	if err != nil {
		return zero, err
	}
	return resp, nil
}

// CreateIPCP starts an IPCP of type typ named name.
func (c *Client) CreateIPCP(ctx context.Context, typ, name string) (ctrl.IPCPInfo, error) {
	return Do(ctx, c.dir, ctrl.CreateIPCP, ctrl.IPCPCreate{Type: typ, Name: name})
}

// Bootstrap makes an IPCP (created if m.Type is set and none of that
// name exists) the first member of a layer.
func (c *Client) Bootstrap(ctx context.Context, m ctrl.IPCPBootstrap) (ctrl.IPCPBootstrapReply, error) {
	return Do(ctx, c.dir, ctrl.BootstrapIPCP, m)
}

// Enroll joins an IPCP to an existing layer.
func (c *Client) Enroll(ctx context.Context, m ctrl.IPCPEnroll) (ctrl.IPCPEnrollReply, error) {
	return Do(ctx, c.dir, ctrl.EnrollIPCP, m)
}

// Connect builds an adjacency.
func (c *Client) Connect(ctx context.Context, m ctrl.IPCPConnect) error {
	_, err := Do(ctx, c.dir, ctrl.ConnectIPCP, m)
	return err
}

// Disconnect tears an adjacency down.
func (c *Client) Disconnect(ctx context.Context, m ctrl.IPCPDisconnect) error {
	_, err := Do(ctx, c.dir, ctrl.DisconnectIPCP, m)
	return err
}

// IPCPs lists the IPCPs of the host.
func (c *Client) IPCPs(ctx context.Context) ([]ctrl.IPCPInfo, error) {
	l, err := Do(ctx, c.dir, ctrl.ListIPCPs, ctrl.None{})
	return l.IPCPs, err
}

// DestroyIPCP stops an IPCP.
func (c *Client) DestroyIPCP(ctx context.Context, name string) error {
	_, err := Do(ctx, c.dir, ctrl.DestroyIPCP, ctrl.IPCPRef{Name: name})
	return err
}

// Bind binds a program, a process or an IPCP to a name.
func (c *Client) Bind(ctx context.Context, m ctrl.Bind) error {
	_, err := Do(ctx, c.dir, ctrl.BindName, m)
	return err
}

// Unbind undoes Bind.
func (c *Client) Unbind(ctx context.Context, m ctrl.Unbind) error {
	_, err := Do(ctx, c.dir, ctrl.UnbindName, m)
	return err
}

// CreateName creates a name with load-balancing policy lb (empty:
// round-robin).
func (c *Client) CreateName(ctx context.Context, name, lb string) error {
	_, err := Do(ctx, c.dir, ctrl.CreateName, ctrl.NameCreate{Name: name, LB: lb})
	return err
}

// Register registers name in layers.
func (c *Client) Register(ctx context.Context, name string, layers ...string) error {
	_, err := Do(ctx, c.dir, ctrl.RegisterName, ctrl.NameRegister{Name: name, Layers: layers})
	return err
}

// Unregister withdraws name from layers.
func (c *Client) Unregister(ctx context.Context, name string, layers ...string) error {
	_, err := Do(ctx, c.dir, ctrl.UnregisterName, ctrl.NameUnregister{Name: name, Layers: layers})
	return err
}

// Names lists the names of the host.
func (c *Client) Names(ctx context.Context) ([]ctrl.NameInfo, error) {
	l, err := Do(ctx, c.dir, ctrl.ListNames, ctrl.None{})
	return l.Names, err
}

// LayerShow asks the local member of layer to describe it.
func (c *Client) LayerShow(ctx context.Context, layer string) (ctrl.LayerInfo, error) {
	return Do(ctx, c.dir, ctrl.ShowLayer, ctrl.LayerShow{Layer: layer})
}

// FlowList lists the flows of the host with their counters.
func (c *Client) FlowList(ctx context.Context) ([]ctrl.FlowStat, error) {
	l, err := Do(ctx, c.dir, ctrl.ListFlows, ctrl.None{})
	return l.Flows, err
}

// Resolve lists the layers of the host that reach name, nearest first.
func (c *Client) Resolve(ctx context.Context, name string) ([]string, error) {
	r, err := Do(ctx, c.dir, ctrl.ResolveName, ctrl.NameResolve{Name: name})
	return r.Layers, err
}

// Alloc allocates a flow to name with QoS q through this IRMd (the
// flow package does the work; opts may pin a layer).
func (c *Client) Alloc(ctx context.Context, name string, q qos.Spec, opts ...flow.Option) (*flow.Flow, error) {
	return flow.Alloc(ctx, name, q, append([]flow.Option{flow.WithRunDir(c.dir)}, opts...)...)
}
