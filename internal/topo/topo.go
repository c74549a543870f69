// Package topo builds multi-host ouro topologies on one machine, without
// root: each host is an in-process IRMd with its own run directory, the
// hosts share a udp4 layer on loopback addresses 127.0.0.x, and a
// unicast layer runs on top with only the adjacencies asked for. The
// demo, the tests and the bench harness use it.
package topo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ouro-net/ouro/flow"
	"github.com/ouro-net/ouro/irmd"
	"github.com/ouro-net/ouro/lib/ctrl"
	"github.com/ouro-net/ouro/lib/irmclient"
)

// Config describes a topology.
type Config struct {
	// Hosts names the hosts; host i gets 127.0.0.(i+1).
	Hosts []string
	// Links lists the unicast adjacencies, as pairs of host names.
	Links [][2]string
	// Lowers is how many separate udp layers join every linked pair
	// (2 gives each adjacency two parallel lower flows). Default 1.
	Lowers int
	// PerLink gives every link its own udp layer (udp1 for Links[0],
	// and so on), joining only its two hosts: a host with two links
	// then has two lower IPCPs, one per link, like a host with two
	// interfaces. It overrides Lowers.
	PerLink bool
	// Layer is the unicast layer's name (default "net").
	Layer string
	// Params are extra unicast bootstrap parameters.
	Params map[string]string
	// LowerParams are extra udp4 bootstrap parameters for every lower
	// IPCP (such as the loss drill "drop").
	LowerParams map[string]string
	// Exe is the binary the IRMds re-execute for IPCPs.
	Exe string
	// Types lists the IPCP types the IRMds accept.
	Types []string
	// Log receives the daemons' logs (nil: discarded).
	Log hclog.Logger
	// LogLevel is passed to IPCP processes.
	LogLevel string
	// Progress, if set, is told of every irm step.
	Progress io.Writer
}

// Host is one host of a topology.
type Host struct {
	Name   string
	Dir    string
	IP     string
	Daemon *irmd.Daemon
}

// Opt selects the host for flow calls.
func (h *Host) Opt() flow.Option { return flow.WithRunDir(h.Dir) }

// Topo is a running topology.
type Topo struct {
	cfg   Config
	Hosts map[string]*Host
	Ports []int
	order []string
	tmp   string
}

// Build starts the hosts and builds the layers. On error everything
// started is stopped.
func Build(ctx context.Context, cfg Config) (_ *Topo, err error) {
	if cfg.Layer == "" {
		cfg.Layer = "net"
	}
	if cfg.Lowers == 0 {
		cfg.Lowers = 1
	}
	if cfg.Log == nil {
		cfg.Log = hclog.NewNullLogger()
	}
	if cfg.LogLevel == "" {
		cfg.LogLevel = "warn"
	}
	tmp, err := os.MkdirTemp("", "ouro-topo")
	if err != nil {
		return nil, err
	}
	t := &Topo{cfg: cfg, Hosts: map[string]*Host{}, order: cfg.Hosts, tmp: tmp}
	defer func() {
		if err != nil {
			t.Close()
		}
	}()
	for i, name := range cfg.Hosts {
		dir := fmt.Sprintf("%s/%s", tmp, name)
		d, err := irmd.Start(irmd.Config{RunDir: dir, Log: cfg.Log.Named(name), Types: cfg.Types,
			Exe: cfg.Exe, ChildLogLevel: cfg.LogLevel})
		if err != nil {
			return nil, fmt.Errorf("host %s: %w", name, err)
		}
		t.Hosts[name] = &Host{Name: name, Dir: dir, IP: fmt.Sprintf("127.0.0.%d", i+1), Daemon: d}
	}
	nports := cfg.Lowers
	if cfg.PerLink {
		nports = len(cfg.Links)
	}
	if t.Ports, err = freePorts(nports, len(cfg.Hosts)); err != nil {
		return nil, err
	}
	if cfg.PerLink {
		for i, l := range cfg.Links {
			a, b := t.Hosts[l[0]], t.Hosts[l[1]]
			for _, pair := range [][2]*Host{{a, b}, {b, a}} {
				h, o := pair[0], pair[1]
				params := t.lowerParams(h.IP, t.Ports[i], fmt.Sprintf("%s:%d", o.IP, t.Ports[i]))
				if err := call(t, h, ctrl.BootstrapIPCP, ctrl.IPCPBootstrap{Type: "udp4", Name: t.lowerName(h.Name, i),
					Layer: lowerLayer(i), Params: params}, "ipcp bootstrap type udp4 name %s layer %s ip %s port %d peer %s:%d",
					t.lowerName(h.Name, i), lowerLayer(i), h.IP, t.Ports[i], o.IP, t.Ports[i]); err != nil {
					return nil, err
				}
			}
		}
	}
	// One udp4 IPCP per host per lower layer; every host lists every
	// other as a peer, so names resolve across the whole lower layer.
	for l := 0; l < cfg.Lowers && !cfg.PerLink; l++ {
		for _, h := range t.hostsInOrder() {
			var peers []string
			for _, o := range t.hostsInOrder() {
				if o != h {
					peers = append(peers, fmt.Sprintf("%s:%d", o.IP, t.Ports[l]))
				}
			}
			params := t.lowerParams(h.IP, t.Ports[l], strings.Join(peers, ","))
			if err := call(t, h, ctrl.BootstrapIPCP, ctrl.IPCPBootstrap{Type: "udp4", Name: t.lowerName(h.Name, l),
				Layer: lowerLayer(l), Params: params}, "ipcp bootstrap type udp4 name %s layer %s ip %s port %d", t.lowerName(h.Name, l), lowerLayer(l), h.IP, t.Ports[l]); err != nil {
				return nil, err
			}
		}
	}
	// The unicast layer: the first host bootstraps, the others enroll
	// through a neighbour that is already a member.
	first := t.hostsInOrder()[0]
	if err := call(t, first, ctrl.BootstrapIPCP, ctrl.IPCPBootstrap{Type: "unicast", Name: first.Name, Layer: cfg.Layer,
		Params: cfg.Params, Autobind: true}, "ipcp bootstrap type unicast name %s layer %s autobind", first.Name, cfg.Layer); err != nil {
		return nil, err
	}
	if err := t.registerLower(first, first.Name, cfg.Layer); err != nil {
		return nil, err
	}
	member := map[string]bool{first.Name: true}
	for len(member) < len(t.Hosts) {
		progress := false
		for _, h := range t.hostsInOrder() {
			if member[h.Name] {
				continue
			}
			via := ""
			for _, l := range cfg.Links {
				if l[0] == h.Name && member[l[1]] {
					via = l[1]
				} else if l[1] == h.Name && member[l[0]] {
					via = l[0]
				}
			}
			if via == "" {
				continue
			}
			if err := call(t, h, ctrl.CreateIPCP, ctrl.IPCPCreate{Type: "unicast", Name: h.Name}, "ipcp create type unicast name %s", h.Name); err != nil {
				return nil, err
			}
			// A layer bootstrapped with a secret file: every member holds it.
			if err := call(t, h, ctrl.EnrollIPCP, ctrl.IPCPEnroll{Name: h.Name, Layer: cfg.Layer, Dst: via, Autobind: true, Secret: cfg.Params["secret"]},
				"ipcp enroll name %s layer %s dst %s autobind", h.Name, cfg.Layer, via); err != nil {
				return nil, err
			}
			if err := t.registerLower(h, h.Name); err != nil {
				return nil, err
			}
			member[h.Name] = true
			progress = true
		}
		if !progress {
			return nil, errors.New("topology is not connected")
		}
	}
	for i, l := range cfg.Links {
		h := t.Hosts[l[0]]
		req := ctrl.IPCPConnect{Name: l[0], Dst: l[1]}
		format, args := "ipcp connect name %s dst %s", []any{l[0], l[1]}
		if cfg.PerLink {
			req.Layer = lowerLayer(i)
			format += " layer %s"
			args = append(args, req.Layer)
		}
		if err := call(t, h, ctrl.ConnectIPCP, req, format, args...); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// lowerParams are the bootstrap parameters of a udp4 IPCP on ip:port
// asking peers, with Config.LowerParams added.
func (t *Topo) lowerParams(ip string, port int, peers string) map[string]string {
	p := map[string]string{"ip": ip, "port": strconv.Itoa(port), "peer": peers}
	for k, v := range t.cfg.LowerParams {
		p[k] = v
	}
	return p
}

func lowerLayer(l int) string { return fmt.Sprintf("udp%d", l+1) }

func (t *Topo) lowerName(host string, l int) string { return fmt.Sprintf("%s.udp%d", host, l+1) }

// registerLower registers names in every lower layer at h.
func (t *Topo) registerLower(h *Host, names ...string) error {
	for _, n := range names {
		var layers []string
		if t.cfg.PerLink {
			for i, l := range t.cfg.Links {
				if l[0] == h.Name || l[1] == h.Name {
					layers = append(layers, lowerLayer(i))
				}
			}
		}
		for l := 0; l < t.cfg.Lowers && !t.cfg.PerLink; l++ {
			layers = append(layers, lowerLayer(l))
		}
		if err := call(t, h, ctrl.RegisterName, ctrl.NameRegister{Name: n, Layers: layers}, "name register %s layer %s", n, strings.Join(layers, " layer ")); err != nil {
			return err
		}
	}
	return nil
}

func (t *Topo) hostsInOrder() []*Host {
	out := make([]*Host, 0, len(t.order))
	for _, n := range t.order {
		if h, ok := t.Hosts[n]; ok {
			out = append(out, h)
		}
	}
	return out
}

// call makes op at h, echoing the equivalent irm command (format, args)
// to Config.Progress.
func call[Req, Resp any](t *Topo, h *Host, op ctrl.Op[Req, Resp], req Req, format string, args ...any) error {
	if t.cfg.Progress != nil {
		fmt.Fprintf(t.cfg.Progress, "    %s$ irm "+format+"\n", append([]any{h.Name}, args...)...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	if _, err := irmclient.Do(ctx, h.Dir, op, req); err != nil {
		return fmt.Errorf("host %s: irm "+format+": %w", append(append([]any{h.Name}, args...), err)...)
	}
	return nil
}

// callTimeout bounds one control request (enrollment may take a while).
const callTimeout = 60 * time.Second

// Call sends one control request to the IRMd of dir, untyped (kept for
// tests and tools that name operations by string; new code uses
// lib/irmclient).
func Call(dir, op string, req, resp any) error {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	return flow.Call(ctx, dir, op, req, resp)
}

// Register registers name in the unicast layer at host.
func (t *Topo) Register(host, name string) error {
	h := t.Hosts[host]
	return call(t, h, ctrl.RegisterName, ctrl.NameRegister{Name: name, Layers: []string{t.cfg.Layer}}, "name register %s layer %s", name, t.cfg.Layer)
}

// Show returns the text `irm layer show` prints for the unicast layer
// at host (for logs; tests read fields through Status).
func (t *Topo) Show(host string) (string, error) {
	info, err := t.Info(host)
	if err != nil {
		return "", err
	}
	return info.Render(), nil
}

// Info returns the layer-show reply of the unicast layer at host.
func (t *Topo) Info(host string) (ctrl.LayerInfo, error) {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	return irmclient.New(t.Hosts[host].Dir).LayerShow(ctx, t.cfg.Layer)
}

// Status returns the typed status of the unicast layer at host.
func (t *Topo) Status(host string) (*ctrl.UnicastStatus, error) {
	info, err := t.Info(host)
	if err != nil {
		return nil, err
	}
	return UnicastOf(info)
}

// KnowsName says whether the directory of host's unicast member holds
// name.
func (t *Topo) KnowsName(host, name string) bool {
	st, err := t.Status(host)
	if err != nil {
		return false
	}
	for _, e := range st.Directory {
		if slices.Contains(e.Names, name) {
			return true
		}
	}
	return false
}

// UnicastOf returns the unicast part of a layer-show reply, or an
// error naming what the reply was instead.
func UnicastOf(info ctrl.LayerInfo) (*ctrl.UnicastStatus, error) {
	if info.Status == nil || info.Status.Unicast == nil {
		return nil, fmt.Errorf("layer %s at IPCP %s (type %s) reports no unicast status", info.Layer, info.IPCP, info.Type)
	}
	return info.Status.Unicast, nil
}

// IPCPs lists the IPCPs of host.
func (t *Topo) IPCPs(host string) ([]ctrl.IPCPInfo, error) {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	return irmclient.New(t.Hosts[host].Dir).IPCPs(ctx)
}

// LowerPID returns the pid of host's IPCP in lower layer l (0-based).
func (t *Topo) LowerPID(host string, l int) (int, error) {
	ipcps, err := t.IPCPs(host)
	if err != nil {
		return 0, err
	}
	for _, i := range ipcps {
		if i.Name == t.lowerName(host, l) {
			return i.PID, nil
		}
	}
	return 0, fmt.Errorf("host %s has no IPCP in %s", host, lowerLayer(l))
}

// WaitRoute polls host's layer status until the forwarding table
// reaches dst over want lower flows or the timeout passes; it returns
// the last status as text (for logs).
func (t *Topo) WaitRoute(host, dst string, want int, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	var info ctrl.LayerInfo
	for time.Now().Before(deadline) {
		var err error
		info, err = t.Info(host)
		if err != nil {
			return info.Render(), err
		}
		if st, err := UnicastOf(info); err == nil && RouteNextHops(st, dst) >= want {
			return info.Render(), nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return info.Render(), fmt.Errorf("route %s -> %s did not reach %d next hops in %v", host, dst, want, timeout)
}

// RouteNextHops counts the lower flows the forwarding table uses for
// the member called dst (0 without a route or a status).
func RouteNextHops(st *ctrl.UnicastStatus, dst string) int {
	if st == nil {
		return 0
	}
	r, ok := st.Route(dst)
	if !ok {
		return 0
	}
	return len(r.Flows)
}

// Close stops every host and removes the run directories.
func (t *Topo) Close() {
	for _, h := range t.Hosts {
		h.Daemon.Close()
	}
	os.RemoveAll(t.tmp)
}

// freePorts finds n UDP ports free on every host address.
func freePorts(n, hosts int) ([]int, error) {
	var out []int
	for tries := 0; len(out) < n && tries < 200; tries++ {
		p := 20000 + rand.IntN(30000)
		ok := true
		var held []*net.UDPConn
		for i := 0; i < hosts; i++ {
			c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, byte(i+1)), Port: p})
			if err != nil {
				ok = false
				break
			}
			held = append(held, c)
		}
		for _, c := range held {
			c.Close()
		}
		if ok {
			out = append(out, p)
		}
	}
	if len(out) < n {
		return nil, errors.New("no free UDP ports on 127.0.0.x")
	}
	return out, nil
}

// ActiveLower returns the lower layer index (0-based) of host's
// adjacency to peer that carried the most packets out since the last
// call with the same counters map, for cutting the link a flow is on.
func (t *Topo) ActiveLower(host, peer string, before map[string]uint64) (int, map[string]uint64, error) {
	st, err := t.Status(host)
	if err != nil {
		return 0, nil, err
	}
	now := map[string]uint64{}
	best, bestDelta := -1, uint64(0)
	for _, a := range st.AdjacenciesTo(peer) {
		l, err := strconv.Atoi(strings.TrimPrefix(a.Lower, "udp"))
		if err != nil || !strings.HasPrefix(a.Lower, "udp") {
			continue
		}
		now[a.Lower] = a.PacketsOut
		if d := a.PacketsOut - before[a.Lower]; best < 0 || d > bestDelta {
			best, bestDelta = l-1, d
		}
	}
	if best < 0 {
		return 0, now, fmt.Errorf("%s has no adjacency to %s", host, peer)
	}
	return best, now, nil
}

// linkIndex returns the index in Links of the link between a and b.
func (t *Topo) linkIndex(a, b string) (int, error) {
	for i, l := range t.cfg.Links {
		if (l[0] == a && l[1] == b) || (l[0] == b && l[1] == a) {
			return i, nil
		}
	}
	return 0, fmt.Errorf("no link between %s and %s", a, b)
}

// Cut kills host's lower IPCP on its link to peer (PerLink topologies):
// the link goes dead at host at once and, at peer, when keepalive says
// so. With graceful set it stops the IPCP with SIGTERM instead, so that
// it deallocates its flows and the peer learns at once too.
func (t *Topo) Cut(host, peer string, graceful bool) (int, error) {
	if !t.cfg.PerLink {
		return 0, errors.New("cut needs a PerLink topology")
	}
	i, err := t.linkIndex(host, peer)
	if err != nil {
		return 0, err
	}
	pid, err := t.LowerPID(host, i)
	if err != nil {
		return 0, err
	}
	sig := syscall.SIGKILL
	if graceful {
		sig = syscall.SIGTERM
	}
	if err := syscall.Kill(pid, sig); err != nil {
		return 0, err
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := t.LowerPID(host, i); err != nil {
			return pid, nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return pid, fmt.Errorf("lower IPCP %d of %s did not go away", pid, host)
}

// Restore brings back host's lower IPCP on its link to peer and opens
// the adjacency over it again.
func (t *Topo) Restore(host, peer string) error {
	i, err := t.linkIndex(host, peer)
	if err != nil {
		return err
	}
	h, o := t.Hosts[host], t.Hosts[peer]
	params := map[string]string{"ip": h.IP, "port": strconv.Itoa(t.Ports[i]), "peer": fmt.Sprintf("%s:%d", o.IP, t.Ports[i])}
	if err := call(t, h, ctrl.BootstrapIPCP, ctrl.IPCPBootstrap{Type: "udp4", Name: t.lowerName(host, i),
		Layer: lowerLayer(i), Params: params}, "ipcp bootstrap type udp4 name %s layer %s ip %s port %d peer %s:%d",
		t.lowerName(host, i), lowerLayer(i), h.IP, t.Ports[i], o.IP, t.Ports[i]); err != nil {
		return err
	}
	if err := call(t, h, ctrl.RegisterName, ctrl.NameRegister{Name: host, Layers: []string{lowerLayer(i)}},
		"name register %s layer %s", host, lowerLayer(i)); err != nil {
		return err
	}
	return call(t, h, ctrl.ConnectIPCP, ctrl.IPCPConnect{Name: host, Dst: peer, Layer: lowerLayer(i)},
		"ipcp connect name %s dst %s layer %s", host, peer, lowerLayer(i))
}

// ActivePeer returns which of peers host's adjacencies sent the most
// packets to since before (a map from a previous call, or nil).
func (t *Topo) ActivePeer(host string, peers []string, before map[string]uint64) (string, map[string]uint64, error) {
	st, err := t.Status(host)
	if err != nil {
		return "", nil, err
	}
	now := map[string]uint64{}
	for _, a := range st.Adjacencies {
		if a.Up {
			now[a.Peer] += a.PacketsOut
		}
	}
	best, bestDelta := "", uint64(0)
	for _, p := range peers {
		if d := now[p] - before[p]; best == "" || d > bestDelta {
			best, bestDelta = p, d
		}
	}
	return best, now, nil
}
