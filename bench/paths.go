package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ouro-net/ouro/flow"
	"github.com/ouro-net/ouro/internal/topo"
	"github.com/ouro-net/ouro/irmd"
	"github.com/ouro-net/ouro/lib/ctrl"
	"github.com/ouro-net/ouro/lib/logging"
	"github.com/ouro-net/ouro/lib/qos"
)

// Paths, in the order they are measured.
const (
	pathRaw      = "raw"
	pathLocal    = "local"
	pathUDP      = "udp"
	pathUnicast1 = "unicast1"
	pathUnicast2 = "unicast2"
	// The -x paths are udp and unicast2 with encrypted flows (-x).
	pathUDPx      = "udp-x"
	pathUnicast2x = "unicast2-x"
)

// encrypted reports whether path runs its flows encrypted.
func encrypted(path string) bool { return strings.HasSuffix(path, "-x") }

// allPaths lists the paths in measuring order.
func allPaths() []string {
	return []string{pathRaw, pathLocal, pathUDP, pathUDPx, pathUnicast1, pathUnicast2, pathUnicast2x, pathUnicast2s}
}

// describe says what a path is, for the table ("" for no path).
func describe(path string) string {
	switch path {
	case pathRaw:
		return "Go UDP sockets on 127.0.0.1, two processes"
	case pathLocal:
		return "one IRMd, local layer"
	case pathUDP:
		return "two IRMds, udp4 layer on 127.0.0.1-2"
	case pathUnicast1:
		return "unicast layer over udp4, one hop"
	case pathUnicast2:
		return "unicast layer over udp4, two hops (square A to D)"
	case pathUDPx:
		return "udp with encrypted flows (-x)"
	case pathUnicast2x:
		return "unicast2 with encrypted flows (-x)"
	case pathUnicast2s:
		return "unicast2 in a layer with a secret (sealed adjacencies, secret.go)"
	}
	return ""
}

// ipcpTypes lists the IPCP types the bench IRMds accept.
func ipcpTypes() []string { return []string{"local", "udp4", "udp6", "eth-dix", "tap", "unicast"} }

// target is one path under measurement: Dial opens a conn to the
// echo (pingName) or the sink (perfName) at its far end.
type target struct {
	Path  string
	Dial  func(ctx context.Context, name string) (net.Conn, error)
	Close func()
	// Note is extra information for the table header.
	Note string
	// Settle, if set, waits until the path is whole again (routes back
	// after a flood made adjacencies flap).
	Settle func() error
	// Downs, if set, counts the adjacency-down events of the path's
	// layer so far (summed over its hosts).
	Downs func() int
	// Dirs maps each host of the path to its IRMd's run directory
	// (nil for raw).
	Dirs map[string]string
	// ServerPID is the pid of the serving process at the far end.
	ServerPID int
	// DialPlain, set on the encrypted (-x) paths, dials the same path
	// with the flow unencrypted: the baseline their round trips are
	// measured against, interleaved (xpair.go).
	DialPlain func(ctx context.Context, name string) (net.Conn, error)
}

// unicastHealth gives t the Settle and Downs of a unicast layer in tp:
// settled when every route pair reaches want next hops.
func unicastHealth(t *target, tp *topo.Topo, want int, routes ...[2]string) *target {
	t.Settle = func() error {
		for _, r := range routes {
			if _, err := tp.WaitRoute(r[0], r[1], want, 10*time.Second); err != nil {
				return err
			}
		}
		return nil
	}
	t.Downs = func() int {
		n := 0
		for h := range tp.Hosts {
			n += adjDowns(tp, h)
		}
		return n
	}
	return t
}

// env is what building targets needs.
type env struct {
	irm      string // the IPCP executable
	logLevel string
	log      io.Writer
}

// build sets up the named path.
func (e *env) build(ctx context.Context, path string) (*target, error) {
	switch path {
	case pathRaw:
		return e.raw()
	case pathLocal:
		return e.local()
	case pathUDP, pathUDPx, pathUnicast1:
		return e.pair(ctx, path)
	case pathUnicast2, pathUnicast2x:
		return e.square(ctx, path)
	case pathUnicast2s:
		return e.secretSquare(ctx, path)
	}
	return nil, fmt.Errorf("unknown path %q", path)
}

// raw is the baseline: a UDP echo and sink in a child process.
func (e *env) raw() (*target, error) {
	c, err := startChild("udp")
	if err != nil {
		return nil, err
	}
	if len(c.Ready) != 4 || c.Ready[0] != "udp" {
		c.Stop()
		return nil, fmt.Errorf("udp server said %q", c.Ready)
	}
	addr := map[string]string{pingName: c.Ready[1], perfName: c.Ready[2]}
	note := "raw UDP receive buffer " + c.Ready[3] + " B as reported by the kernel"
	if n, _ := strconv.Atoi(c.Ready[3]); n < rcvBuf {
		note += fmt.Sprintf(" (asked %d: capped by net.core.rmem_max)", rcvBuf)
	}
	return &target{Path: pathRaw, Note: note, Close: c.Stop,
		Dial: func(_ context.Context, name string) (net.Conn, error) { return dialUDP(addr[name]) }}, nil
}

// flowTarget serves the bench names at srvDir and dials them from
// cliDir, pinned to layer.
func (e *env) flowTarget(path, srvDir, cliDir, layer string, closeAll func()) (*target, error) {
	c, err := startChild("flow", srvDir)
	if err != nil {
		closeAll()
		return nil, err
	}
	opts := []flow.Option{flow.WithRunDir(cliDir), flow.WithLayer(layer)}
	q := qos.Raw()
	q.Encrypt = encrypted(path)
	t := &target{Path: path, ServerPID: c.cmd.Process.Pid,
		Close: func() {
			c.Stop()
			closeAll()
		},
		Dial: func(ctx context.Context, name string) (net.Conn, error) { return allocRetryQ(ctx, name, q, opts) },
	}
	if q.Encrypt {
		plain := q
		plain.Encrypt = false
		t.DialPlain = func(ctx context.Context, name string) (net.Conn, error) { return allocRetryQ(ctx, name, plain, opts) }
	}
	return t, nil
}

// allocRetry allocates a raw flow, retrying for a while: a name takes
// some time to spread through a layer's directory.
func allocRetry(ctx context.Context, name string, opts []flow.Option) (net.Conn, error) {
	return allocRetryQ(ctx, name, qos.Raw(), opts)
}

// allocRetryQ is allocRetry with QoS q.
func allocRetryQ(ctx context.Context, name string, q qos.Spec, opts []flow.Option) (net.Conn, error) {
	deadline := time.Now().Add(20 * time.Second)
	for {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		f, err := flow.Alloc(actx, name, q, opts...)
		cancel()
		if err == nil {
			return f, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, fmt.Errorf("allocate a flow to %s: %w", name, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// local is one IRMd with a local layer.
func (e *env) local() (*target, error) {
	dir, err := os.MkdirTemp("", "ouro-bench")
	if err != nil {
		return nil, err
	}
	lvl, _ := logging.ParseLevel(e.logLevel)
	d, err := irmd.Start(irmd.Config{RunDir: dir, Log: logging.New("irmd", lvl, e.log), Types: ipcpTypes(),
		Exe: e.irm, ChildLogLevel: e.logLevel})
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start IRMd: %w", err)
	}
	closeAll := func() {
		d.Close()
		os.RemoveAll(dir)
	}
	if err := topo.Call(dir, ctrl.OpIPCPBootstrap, ctrl.IPCPBootstrap{Type: "local", Name: "lo", Layer: "lo"}, nil); err != nil {
		closeAll()
		return nil, fmt.Errorf("bootstrap the local layer: %w", err)
	}
	if err := registerAll(dir, "lo"); err != nil {
		closeAll()
		return nil, err
	}
	t, err := e.flowTarget(pathLocal, dir, dir, "lo", closeAll)
	if err != nil {
		return nil, err
	}
	t.Dirs = map[string]string{"local": dir}
	return t, nil
}

func registerAll(dir string, layers ...string) error {
	for _, n := range []string{pingName, perfName} {
		if err := topo.Call(dir, ctrl.OpNameRegister, ctrl.NameRegister{Name: n, Layers: layers}, nil); err != nil {
			return fmt.Errorf("register %s in %v: %w", n, layers, err)
		}
	}
	return nil
}

func (e *env) topo(ctx context.Context, hosts []string, links [][2]string, perLink bool) (*topo.Topo, error) {
	lvl, _ := logging.ParseLevel(e.logLevel)
	return topo.Build(ctx, topo.Config{Hosts: hosts, Links: links, PerLink: perLink, Exe: e.irm, Types: ipcpTypes(),
		Log: logging.New("irmd", lvl, e.log), LogLevel: e.logLevel})
}

// pair is two IRMds over udp4 (lower layer udp1) with a unicast layer
// on top; the names are registered in both, and the path picks one.
func (e *env) pair(ctx context.Context, path string) (*target, error) {
	tp, err := e.topo(ctx, []string{"a", "b"}, [][2]string{{"a", "b"}}, false)
	if err != nil {
		return nil, fmt.Errorf("build two hosts: %w", err)
	}
	layer := "udp1"
	if path == pathUnicast1 {
		layer = "net"
		if _, err := tp.WaitRoute("a", "b", 1, 20*time.Second); err != nil {
			tp.Close()
			return nil, err
		}
	}
	if err := registerAll(tp.Hosts["b"].Dir, layer); err != nil {
		tp.Close()
		return nil, err
	}
	t, err := e.flowTarget(path, tp.Hosts["b"].Dir, tp.Hosts["a"].Dir, layer, tp.Close)
	if err != nil {
		return nil, err
	}
	t.Dirs = hostDirs(tp)
	if path != pathUnicast1 {
		return t, nil
	}
	return unicastHealth(t, tp, 1, [2]string{"a", "b"}, [2]string{"b", "a"}), nil
}

// square is the dual-homed square A-B-D-C-A, one udp4 layer per link
// as in the irm demo, measured from A to D: two hops.
func (e *env) square(ctx context.Context, path string) (*target, error) {
	tp, err := e.buildSquare(ctx)
	if err != nil {
		return nil, err
	}
	if err := registerAll(tp.Hosts["d"].Dir, "net"); err != nil {
		tp.Close()
		return nil, err
	}
	t, err := e.flowTarget(path, tp.Hosts["d"].Dir, tp.Hosts["a"].Dir, "net", tp.Close)
	if err != nil {
		return nil, err
	}
	t.Dirs = hostDirs(tp)
	return unicastHealth(t, tp, 2, [2]string{"a", "d"}, [2]string{"d", "a"}), nil
}

// hostDirs maps the hosts of tp to their run directories.
func hostDirs(tp *topo.Topo) map[string]string {
	m := map[string]string{}
	for n, h := range tp.Hosts {
		m[n] = h.Dir
	}
	return m
}

// buildSquare builds the square and waits until A reaches D over both
// B and C.
func (e *env) buildSquare(ctx context.Context) (*topo.Topo, error) {
	tp, err := e.topo(ctx, []string{"a", "b", "c", "d"}, [][2]string{{"b", "a"}, {"c", "a"}, {"d", "b"}, {"d", "c"}}, true)
	if err != nil {
		return nil, fmt.Errorf("build the square: %w", err)
	}
	if _, err := tp.WaitRoute("a", "d", 2, 20*time.Second); err != nil {
		tp.Close()
		return nil, err
	}
	return tp, nil
}
