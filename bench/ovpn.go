package main

// The -ovpn mode (root): IP over ouro against Linux MPTCP over the same
// two paths, in one run.
//
// Topology: namespaces A and B joined by two paths, each A -veth- M -veth-
// B through a bridge of its own in a middle namespace M. A and B run an
// IRMd each, an eth-dix IPCP per path and the unicast layer "net" over
// both (default liveness: hello 10 ms, multiplier 3; damping 10 ms so
// that the repeated cuts are not held out by flap damping), with ovpn serving
// 10.9.0.1/24 at B and dialled from A as 10.9.0.2/24. The same veths
// also carry IP (10.10.1.0/24 and 10.10.2.0/24) with MPTCP configured: A
// has an endpoint on the second path's device, which opens a second
// subflow over that path; B signals its second address.
//
// For each shape, system and round: a fresh TCP connection from A to B
// (through the tunnel, or MPTCP over the veths), one 64-byte request
// every millisecond echoed back; the path that carries the requests is
// found from A's transmit counters and then fails:
//
//	carrier  M sets both of its ports on the path down: A and B lose carrier
//	silent   M takes A's port out of the bridge: both ends keep carrier,
//	         frames go nowhere
//
// The figure is the longest gap between two replies around the failure.
// Then the path is restored and the next round waits until it is used
// again. Bulk: 200 MiB over TCP on the bare veth path, over ovpn, and
// over ovpn with a carrier cut mid-way, each with a SHA-256 check; then
// the plain client gives way to an encrypted one (-x, pinning the
// server's identity key with -k) and the same bulk runs through it.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ouro-net/ouro/flow"
	"github.com/ouro-net/ouro/internal/testenv"
	"github.com/ouro-net/ouro/internal/topo"
	"github.com/ouro-net/ouro/lib/ctrl"
	"github.com/ouro-net/ouro/lib/rundir"
	"github.com/ouro-net/ouro/lib/seal"
)

// OvpnGap is one shape and system: the longest gap of each round.
type OvpnGap struct {
	Shape    string    `json:"shape"`
	System   string    `json:"system"`
	GapsMS   []float64 `json:"gaps_ms"`
	MedianMS float64   `json:"median_ms"`
	MaxMS    float64   `json:"max_ms"`
	TargetMS float64   `json:"target_ms,omitempty"`
	Errors   []string  `json:"errors,omitempty"`
}

// OvpnBulk is one bulk transfer.
type OvpnBulk struct {
	What    string  `json:"what"`
	Bytes   int64   `json:"bytes"`
	Seconds float64 `json:"seconds"`
	Mbps    float64 `json:"mbit_per_s"`
	Intact  bool    `json:"intact"`
	Error   string  `json:"error,omitempty"`
}

// OvpnResult is the -ovpn report.
type OvpnResult struct {
	Started   time.Time  `json:"started"`
	GoVersion string     `json:"go_version"`
	CPUs      int        `json:"cpus"`
	Rounds    int        `json:"rounds"`
	Gaps      []OvpnGap  `json:"gaps"`
	Bulk      []OvpnBulk `json:"bulk"`
	Notes     []string   `json:"notes,omitempty"`
	ElapsedS  float64    `json:"elapsed_s"`
}

const ovpnBulkBytes = 200 << 20

// ovTopo is the running topology.
type ovTopo struct {
	e       *env
	ovpnBin string
	ns      map[string]string // a, b, m
	dir     map[string]string // a, b
	devA    [2]string         // A's end of each path
	devB    [2]string
	portA   [2]string // M's port toward A on each path
	portB   [2]string
	br      [2]string
	procs   []*bproc
	client  *bproc
	key     string // the server's identity key; key+".pub" its public key
	cleanup []func()
}

// bproc is a process the bench started.
type bproc struct {
	cmd  *exec.Cmd
	out  *lockedBuf
	done chan struct{}
}

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (p *bproc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// sh runs a command, with its output in the error.
func sh(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// ovpnBench runs the -ovpn mode.
func ovpnBench(ctx context.Context, e *env, rounds int, out, progress io.Writer) (*OvpnResult, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("-ovpn needs root (network namespaces, veth, bridges, TUN)")
	}
	root, err := testenv.ModuleRoot()
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "ouro-bench-ovpn")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	o := &ovTopo{e: e, ovpnBin: filepath.Join(tmp, "ovpn"), ns: map[string]string{}, dir: map[string]string{}}
	defer o.close()
	fmt.Fprintln(progress, "bench: building ovpn")
	cmd := exec.Command("go", "build", "-buildvcs=false", "-o", o.ovpnBin, "./tools/ovpn")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build ./tools/ovpn: %v\n%s", err, b)
	}
	start := time.Now()
	fmt.Fprintln(progress, "bench: ovpn: building namespaces, bridges, layers, tunnel and MPTCP")
	if err := o.build(ctx, tmp); err != nil {
		return nil, err
	}
	r := &OvpnResult{Started: start, GoVersion: runtime.Version(), CPUs: runtime.NumCPU(), Rounds: rounds}
	targets := map[string]float64{"carrier/ovpn": 10, "silent/ovpn": 50}
	for _, shape := range []string{"carrier", "silent"} {
		for _, system := range []string{"ovpn", "mptcp"} {
			g := OvpnGap{Shape: shape, System: system, TargetMS: targets[shape+"/"+system]}
			for i := 0; i < rounds && ctx.Err() == nil; i++ {
				gap, ok, note, err := o.gapOnce(ctx, shape, system)
				if note != "" && !contains(r.Notes, note) {
					r.Notes = append(r.Notes, note)
				}
				if ok {
					g.GapsMS = append(g.GapsMS, gap)
					fmt.Fprintf(progress, "bench: %s %s round %d: longest gap %.1f ms\n", shape, system, i+1, gap)
				}
				if err != nil {
					g.Errors = append(g.Errors, err.Error())
					fmt.Fprintf(progress, "bench: %s %s round %d: %v\n", shape, system, i+1, err)
				}
			}
			g.MedianMS = median(g.GapsMS)
			for _, v := range g.GapsMS {
				g.MaxMS = max(g.MaxMS, v)
			}
			r.Gaps = append(r.Gaps, g)
		}
	}
	for _, b := range []struct {
		what string
		cut  bool
	}{{"tcp over the bare veth", false}, {"tcp over ovpn", false}, {"tcp over ovpn, carrier cut mid-way", true}} {
		if ctx.Err() != nil {
			break
		}
		res := o.bulk(ctx, b.what, b.cut)
		fmt.Fprintf(progress, "bench: bulk %s: %.0f Mbit/s intact %v %s\n", b.what, res.Mbps, res.Intact, res.Error)
		r.Bulk = append(r.Bulk, res)
	}
	if st := o.client.out.String(); strings.Contains(st, `"event":"down"`) {
		r.Notes = append(r.Notes, "the ovpn client's flow went down during the run (see its status lines)")
	}
	if ctx.Err() == nil {
		res := o.encryptedBulk(ctx)
		fmt.Fprintf(progress, "bench: bulk %s: %.0f Mbit/s intact %v %s\n", res.What, res.Mbps, res.Intact, res.Error)
		r.Bulk = append(r.Bulk, res)
	}
	r.ElapsedS = time.Since(start).Seconds()
	r.print(out)
	return r, nil
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// build creates the namespaces, links, daemons, layers, the tunnel and
// the MPTCP configuration.
func (o *ovTopo) build(ctx context.Context, tmp string) error {
	if err := o.bridgedPaths(fmt.Sprintf("ovb%d", os.Getpid()%100000), true); err != nil {
		return err
	}
	// MPTCP: A's endpoint on the second path's device opens a second
	// subflow, bound to that device so it runs over the second path (a
	// subflow opened only from B's announced address would take A's first
	// address as its source, and its replies the first path). B announces
	// its second address too.
	for _, s := range [][]string{
		{"ip", "-n", o.ns["a"], "mptcp", "limits", "set", "subflow", "2", "add_addr_accepted", "2"},
		{"ip", "-n", o.ns["b"], "mptcp", "limits", "set", "subflow", "2", "add_addr_accepted", "2"},
		{"ip", "-n", o.ns["a"], "mptcp", "endpoint", "add", "10.10.2.1", "dev", o.devA[1], "subflow"},
		{"ip", "-n", o.ns["b"], "mptcp", "endpoint", "add", "10.10.2.2", "dev", o.devB[1], "signal"},
	} {
		if err := sh(s...); err != nil {
			return err
		}
	}
	if err := o.ouroTwoPaths(ctx, tmp); err != nil {
		return err
	}
	if err := o.run("b", o.e.irm, "name", "register", "ovpn", "layer", "net"); err != nil {
		return err
	}
	o.key = filepath.Join(tmp, "ovpn.key")
	if err := seal.GenerateIdentity(o.key, o.key+".pub"); err != nil {
		return err
	}
	srv, err := o.start("b", o.ovpnBin, "-l", "-n", "ovpn", "--ip", "10.9.0.1/24", "-k", o.key, "--json")
	if err != nil {
		return err
	}
	if err := waitLine(srv, `"event":"serving"`, 10*time.Second); err != nil {
		return err
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var info ctrl.LayerInfo
		if topo.Call(o.dir["a"], ctrl.OpLayerShow, ctrl.LayerShow{Layer: "net"}, &info) == nil && knowsName(info, "ovpn") {
			break
		}
		if time.Now().After(deadline) {
			return errors.New("host A never learnt the name ovpn")
		}
	}
	if o.client, err = o.start("a", o.ovpnBin, "-n", "ovpn", "--ip", "10.9.0.2/24", "--json"); err != nil {
		return err
	}
	return waitLine(o.client, `"event":"up"`, 20*time.Second)
}

// waitLine waits until p printed a line containing s.
func waitLine(p *bproc, s string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for !strings.Contains(p.out.String(), s) {
		select {
		case <-p.done:
			return fmt.Errorf("%s exited: %s", filepath.Base(p.cmd.Args[len(p.cmd.Args)-1]), p.out.String())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no %s in %v: %s", s, d, p.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// command builds bin args... inside host's namespace with its run directory.
func (o *ovTopo) command(h, bin string, args ...string) *exec.Cmd {
	cmd := exec.Command("ip", append([]string{"netns", "exec", o.ns[h], bin}, args...)...)
	cmd.Env = append(os.Environ(), rundir.EnvVar+"="+o.dir[h])
	return cmd
}

func (o *ovTopo) run(h, bin string, args ...string) error {
	out, err := o.command(h, bin, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s at %s: %v: %s", filepath.Base(bin), strings.Join(args, " "), h, err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (o *ovTopo) start(h, bin string, args ...string) (*bproc, error) {
	cmd := o.command(h, bin, args...)
	p := &bproc{cmd: cmd, out: &lockedBuf{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		cmd.Wait()
		close(p.done)
	}()
	o.procs = append(o.procs, p)
	return p, nil
}

// close stops the processes (ovpn first, the IRMds last) and removes
// the namespaces and links.
func (o *ovTopo) close() {
	for i := len(o.procs) - 1; i >= 0; i-- {
		o.procs[i].stop()
	}
	for i := len(o.cleanup) - 1; i >= 0; i-- {
		o.cleanup[i]()
	}
}

// waitBoth waits until A routes to B over both paths.
func (o *ovTopo) waitBoth(d time.Duration) error {
	deadline := time.Now().Add(d)
	var info ctrl.LayerInfo
	for {
		if topo.Call(o.dir["a"], ctrl.OpLayerShow, ctrl.LayerShow{Layer: "net"}, &info) == nil && routeFlows(info, "b") >= 2 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("host A's route to B not over both paths after %v:\n%s", d, info.Render())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// txPackets returns the packets A sent on each path.
func (o *ovTopo) txPackets() ([2]uint64, error) {
	var n [2]uint64
	for k := 0; k < 2; k++ {
		b, err := exec.Command("ip", "-n", o.ns["a"], "-s", "-j", "link", "show", "dev", o.devA[k]).Output()
		if err != nil {
			return n, fmt.Errorf("link stats of %s: %w", o.devA[k], err)
		}
		var v []struct {
			Stats64 struct {
				TX struct {
					Packets uint64 `json:"packets"`
				} `json:"tx"`
			} `json:"stats64"`
		}
		if err := json.Unmarshal(b, &v); err != nil || len(v) == 0 {
			return n, fmt.Errorf("link stats of %s: %v", o.devA[k], err)
		}
		n[k] = v[0].Stats64.TX.Packets
	}
	return n, nil
}

// busyPath returns the path that carried most of A's packets over d.
func (o *ovTopo) busyPath(d time.Duration) (int, error) {
	a, err := o.txPackets()
	if err != nil {
		return 0, err
	}
	time.Sleep(d)
	b, err := o.txPackets()
	if err != nil {
		return 0, err
	}
	if b[1]-a[1] > b[0]-a[0] {
		return 1, nil
	}
	return 0, nil
}

// fail breaks path k in the given shape and returns its repair.
func (o *ovTopo) fail(shape string, k int) (func() error, error) {
	m := o.ns["m"]
	switch shape {
	case "carrier":
		if err := sh("ip", "-n", m, "link", "set", o.portA[k], "down"); err != nil {
			return nil, err
		}
		if err := sh("ip", "-n", m, "link", "set", o.portB[k], "down"); err != nil {
			return nil, err
		}
		return func() error {
			if err := sh("ip", "-n", m, "link", "set", o.portA[k], "up"); err != nil {
				return err
			}
			return sh("ip", "-n", m, "link", "set", o.portB[k], "up")
		}, nil
	case "silent":
		if err := sh("ip", "-n", m, "link", "set", o.portA[k], "nomaster"); err != nil {
			return nil, err
		}
		return func() error { return sh("ip", "-n", m, "link", "set", o.portA[k], "master", o.br[k]) }, nil
	}
	return nil, fmt.Errorf("unknown shape %q", shape)
}

// inNetNS runs fn on a thread switched into namespace ns; sockets fn
// creates stay in ns.
func inNetNS(ns string, fn func()) error {
	var err error
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		var orig, target *os.File
		if orig, err = os.Open("/proc/thread-self/ns/net"); err != nil {
			runtime.UnlockOSThread()
			return
		}
		defer orig.Close()
		if target, err = os.Open("/run/netns/" + ns); err != nil {
			runtime.UnlockOSThread()
			return
		}
		defer target.Close()
		if err = unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			return
		}
		fn()
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		} // else the thread stays locked and dies with this goroutine
	}()
	<-done
	return err
}

// connect returns a TCP connection from A to B for system and the
// server end, and what the test should know of it.
func (o *ovTopo) connect(system string) (net.Conn, net.Conn, string, error) {
	var ln net.Listener
	var lerr error
	addr := "10.9.0.1:0"
	lc := net.ListenConfig{}
	if system == "mptcp" {
		addr = "0.0.0.0:0"
		lc.SetMultipathTCP(true)
	}
	if err := inNetNS(o.ns["b"], func() { ln, lerr = lc.Listen(context.Background(), "tcp4", addr) }); err != nil {
		return nil, nil, "", err
	}
	if lerr != nil {
		return nil, nil, "", lerr
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	dst := net.JoinHostPort("10.9.0.1", port)
	d := net.Dialer{Timeout: 10 * time.Second}
	if system == "mptcp" {
		dst = net.JoinHostPort("10.10.1.2", port)
		d.SetMultipathTCP(true)
	}
	acc := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			c = nil
		}
		acc <- c
	}()
	var c net.Conn
	var derr error
	if err := inNetNS(o.ns["a"], func() { c, derr = d.Dial("tcp4", dst) }); err != nil {
		return nil, nil, "", err
	}
	if derr != nil {
		ln.Close()
		<-acc
		return nil, nil, "", derr
	}
	s := <-acc
	if s == nil {
		c.Close()
		return nil, nil, "", errors.New("accept failed")
	}
	note := ""
	if system == "mptcp" {
		if mp, err := c.(*net.TCPConn).MultipathTCP(); err != nil || !mp {
			note = "MPTCP was not negotiated: the mptcp figures are plain TCP"
		} else if !o.secondSubflow(port, 2*time.Second) {
			note = "an MPTCP connection had no second subflow from A's second address 2 s after connecting"
		}
	}
	return c, s, note, nil
}

// secondSubflow waits until A has a subflow from its second address to
// port.
func (o *ovTopo) secondSubflow(port string, d time.Duration) bool {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		out, err := exec.Command("ss", "-N", o.ns["a"], "-tnH", "state", "established", "src", "10.10.2.1",
			"dport", "=", ":"+port).Output()
		if err == nil && strings.TrimSpace(string(out)) != "" {
			return true
		}
	}
	return false
}

// gapOnce runs one round: the request stream, the failure of the path
// carrying it, and the longest gap between replies around it (ok: the
// stream recovered and the gap is a figure). An error after a valid gap
// says what went wrong after it (the path did not come back in time).
func (o *ovTopo) gapOnce(ctx context.Context, shape, system string) (gap float64, ok bool, note string, err error) {
	c, s, note, err := o.connect(system)
	if err != nil {
		return 0, false, note, fmt.Errorf("connect: %w", err)
	}
	defer c.Close()
	defer s.Close()
	var mu sync.Mutex
	var arrivals []time.Time
	var bad atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { // the echo; ends when c closes
		defer wg.Done()
		io.Copy(s, s)
	}()
	go func() { // the requests
		defer wg.Done()
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		req := make([]byte, 64)
		for seq := uint64(0); ; seq++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			binary.BigEndian.PutUint64(req, seq)
			if _, err := c.Write(req); err != nil {
				return
			}
		}
	}()
	go func() { // the replies
		defer wg.Done()
		resp := make([]byte, 64)
		for seq := uint64(0); ; seq++ {
			if _, err := io.ReadFull(c, resp); err != nil {
				return
			}
			if binary.BigEndian.Uint64(resp) != seq {
				bad.Store("reply out of order")
				return
			}
			mu.Lock()
			arrivals = append(arrivals, time.Now())
			mu.Unlock()
		}
	}()
	defer func() {
		close(stop)
		c.Close()
		wg.Wait()
	}()
	time.Sleep(500 * time.Millisecond)
	k, err := o.busyPath(200 * time.Millisecond)
	if err != nil {
		return 0, false, note, err
	}
	at := time.Now()
	repair, err := o.fail(shape, k)
	if err != nil {
		return 0, false, note, err
	}
	// Recovered: replies flowing again for 300 ms, at least 500 ms after
	// the failure; give up after 8 s.
	recovered := false
	for time.Since(at) < 8*time.Second && ctx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
		mu.Lock()
		n := 0
		for i := len(arrivals) - 1; i >= 0 && time.Since(arrivals[i]) < 300*time.Millisecond; i-- {
			n++
		}
		mu.Unlock()
		if time.Since(at) > 500*time.Millisecond && n > 150 {
			recovered = true
			break
		}
	}
	mu.Lock()
	for i := 1; i < len(arrivals); i++ {
		if arrivals[i].After(at) {
			gap = max(gap, float64(arrivals[i].Sub(arrivals[i-1]))/float64(time.Millisecond))
		}
	}
	mu.Unlock()
	if v := bad.Load(); v != nil {
		return 0, false, note, errors.New(v.(string))
	}
	if !recovered {
		err = fmt.Errorf("no recovery within 8 s of the %s failure of path %d", shape, k+1)
	}
	if rerr := repair(); rerr != nil {
		return gap, recovered, note, errors.Join(err, rerr)
	}
	// Let the repaired path come back before the next round.
	if system == "ovpn" {
		if werr := o.waitBoth(30 * time.Second); werr != nil {
			fmt.Fprintf(o.e.log, "bench: %v\n", werr)
			first, _, _ := strings.Cut(werr.Error(), "\n")
			return gap, recovered, note, errors.Join(err, fmt.Errorf("after the round: %s", first))
		}
	}
	time.Sleep(time.Second)
	return gap, recovered, note, err
}

// encryptedBulk replaces the plain client by one with -x that pins the
// server's key (another address: the server may not have seen the old
// flow go yet) and runs the bulk transfer through it.
func (o *ovTopo) encryptedBulk(ctx context.Context) OvpnBulk {
	what := "tcp over ovpn -x (key pinned)"
	o.client.stop()
	c, err := o.start("a", o.ovpnBin, "-n", "ovpn", "--ip", "10.9.0.3/24", "-x", "-k", o.key+".pub", "--json")
	if err == nil {
		o.client = c
		err = waitLine(c, `"event":"up"`, 20*time.Second)
	}
	if err != nil {
		return OvpnBulk{What: what, Bytes: ovpnBulkBytes, Error: err.Error()}
	}
	return o.bulk(ctx, what, false)
}

// bulk moves ovpnBulkBytes from A to B and checks them.
func (o *ovTopo) bulk(ctx context.Context, what string, cut bool) OvpnBulk {
	r := OvpnBulk{What: what, Bytes: ovpnBulkBytes}
	var ln net.Listener
	var lerr error
	addr := "10.9.0.1:0"
	if strings.Contains(what, "bare") {
		addr = "10.10.1.2:0"
	}
	if err := inNetNS(o.ns["b"], func() { ln, lerr = net.Listen("tcp4", addr) }); err != nil || lerr != nil {
		r.Error = fmt.Sprint(err, lerr)
		return r
	}
	defer ln.Close()
	var rcvd atomic.Int64
	type result struct {
		n   int64
		sum []byte
		err error
	}
	res := make(chan result, 1)
	go func() {
		s, err := ln.Accept()
		if err != nil {
			res <- result{err: err}
			return
		}
		defer s.Close()
		h := sha256.New()
		n, err := io.Copy(io.MultiWriter(h, countWriter{&rcvd}), s)
		res <- result{n, h.Sum(nil), err}
	}()
	var c net.Conn
	var derr error
	if err := inNetNS(o.ns["a"], func() { c, derr = net.DialTimeout("tcp4", ln.Addr().String(), 10*time.Second) }); err != nil || derr != nil {
		r.Error = fmt.Sprint(err, derr)
		return r
	}
	defer c.Close()
	h := sha256.New()
	src := io.TeeReader(io.LimitReader(rand.NewChaCha8([32]byte{7}), ovpnBulkBytes), h)
	start := time.Now()
	werr := make(chan error, 1)
	go func() {
		_, err := io.Copy(c, src)
		if err == nil {
			err = c.(*net.TCPConn).CloseWrite()
		}
		werr <- err
	}()
	var repair func() error
	if cut {
		for rcvd.Load() < ovpnBulkBytes/4 && time.Since(start) < 60*time.Second {
			time.Sleep(5 * time.Millisecond)
		}
		k, err := o.busyPath(20 * time.Millisecond)
		if err == nil {
			repair, err = o.fail("carrier", k)
		}
		if err != nil {
			r.Error = err.Error()
		}
	}
	var got result
	select {
	case got = <-res:
	case <-time.After(180 * time.Second):
		got.err = fmt.Errorf("stalled at %d bytes", rcvd.Load())
		c.Close()
	case <-ctx.Done():
		got.err = ctx.Err()
		c.Close()
	}
	el := time.Since(start)
	if repair != nil {
		if err := repair(); err != nil && r.Error == "" {
			r.Error = err.Error()
		}
		o.waitBoth(20 * time.Second)
	}
	if err := <-werr; err != nil && got.err == nil {
		got.err = err
	}
	r.Seconds = el.Seconds()
	r.Mbps = float64(got.n) * 8 / el.Seconds() / 1e6
	r.Intact = got.err == nil && got.n == ovpnBulkBytes && bytes.Equal(got.sum, h.Sum(nil))
	if got.err != nil && r.Error == "" {
		r.Error = got.err.Error()
	}
	return r
}

type countWriter struct{ n *atomic.Int64 }

func (c countWriter) Write(b []byte) (int, error) {
	c.n.Add(int64(len(b)))
	return len(b), nil
}

func (r *OvpnResult) print(w io.Writer) {
	fmt.Fprintf(w, "\novpn vs MPTCP: longest gap of a TCP stream of one 64-byte request per ms when the path carrying it fails (%d rounds each)\n\n", r.Rounds)
	fmt.Fprintf(w, "%-8s %-6s %10s %10s %8s  %s\n", "shape", "system", "median ms", "max ms", "target", "rounds (ms)")
	for _, g := range r.Gaps {
		target := "-"
		if g.TargetMS > 0 {
			target = fmt.Sprintf("<= %.0f", g.TargetMS)
		}
		var runs []string
		for _, v := range g.GapsMS {
			runs = append(runs, fmt.Sprintf("%.1f", v))
		}
		line := fmt.Sprintf("%-8s %-6s %10.1f %10.1f %8s  %s", g.Shape, g.System, g.MedianMS, g.MaxMS, target, strings.Join(runs, " "))
		if len(g.Errors) > 0 {
			line += fmt.Sprintf("  (%d failed: %s)", len(g.Errors), g.Errors[0])
		}
		fmt.Fprintln(w, line)
	}
	fmt.Fprintf(w, "\nbulk: %d MiB A to B, SHA-256 checked\n\n", ovpnBulkBytes>>20)
	for _, b := range r.Bulk {
		fmt.Fprintf(w, "%-36s %8.0f Mbit/s %7.2f s  intact %-5v %s\n", b.What, b.Mbps, b.Seconds, b.Intact, b.Error)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}

// ouroTwoPaths brings up ouro on the two paths: an IRMd per end, an
// eth-dix layer per path, and one unicast layer "net" over both, with
// B enrolled at A and an adjacency over each path; a, b and net are
// registered in both eth layers. Default liveness; damping 10 ms,
// since the benches cut the same two paths again and again within
// seconds, and flap damping (the default 1 s doubling with every flap
// in a minute, up to 32 s) would hold the repaired path out and leave
// the next round a single path.
func (o *ovTopo) ouroTwoPaths(ctx context.Context, tmp string) error {
	for _, h := range []string{"a", "b"} {
		o.dir[h] = filepath.Join(tmp, h)
		if _, err := o.start(h, o.e.irm, "daemon", "--rundir", o.dir[h], "--log-level", o.e.logLevel); err != nil {
			return err
		}
	}
	for _, h := range []string{"a", "b"} {
		deadline := time.Now().Add(10 * time.Second)
		for flow.Call(ctx, o.dir[h], ctrl.OpIPCPList, nil, &ctrl.IPCPList{}) != nil {
			if time.Now().After(deadline) {
				return fmt.Errorf("IRMd of %s does not answer", h)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	irm := func(h string, args ...string) error { return o.run(h, o.e.irm, args...) }
	for _, h := range []string{"a", "b"} {
		devs := o.devA
		if h == "b" {
			devs = o.devB
		}
		for k := 0; k < 2; k++ {
			if err := irm(h, "ipcp", "bootstrap", "type", "eth-dix", "name", fmt.Sprintf("%s.e%d", h, k+1),
				"layer", fmt.Sprintf("e%d", k+1), "dev", devs[k]); err != nil {
				return err
			}
		}
	}
	reg := func(h, name string) error { return irm(h, "name", "register", name, "layer", "e1", "layer", "e2") }
	for _, step := range []func() error{
		func() error {
			return irm("a", "ipcp", "bootstrap", "type", "unicast", "name", "a", "layer", "net", "autobind", "damping", "10ms")
		},
		func() error { return reg("a", "a") },
		func() error { return reg("a", "net") },
		func() error { return irm("b", "ipcp", "create", "type", "unicast", "name", "b") },
		func() error { return irm("b", "ipcp", "enroll", "name", "b", "layer", "net", "dst", "a", "autobind") },
		func() error { return reg("b", "b") },
		func() error { return irm("b", "ipcp", "connect", "name", "b", "dst", "a", "layer", "e1") },
		func() error { return irm("b", "ipcp", "connect", "name", "b", "dst", "a", "layer", "e2") },
		func() error { return o.waitBoth(20 * time.Second) },
	} {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

// bridgedPaths makes the namespaces a, b and m (names prefixed pfx) and
// two paths A - bridge in m - B of veth pairs, all up; with addrs, A
// and B get 10.10.K.1 and 10.10.K.2 on path K (for IP and MPTCP).
// Everything it makes is removed by o.close.
func (o *ovTopo) bridgedPaths(pfx string, addrs bool) error {
	for _, h := range []string{"a", "b", "m"} {
		ns := pfx + h
		if err := sh("ip", "netns", "add", ns); err != nil {
			return err
		}
		o.cleanup = append(o.cleanup, func() { exec.Command("ip", "netns", "del", ns).Run() })
		o.ns[h] = ns
		if err := sh("ip", "-n", ns, "link", "set", "lo", "up"); err != nil {
			return err
		}
	}
	for k := 0; k < 2; k++ {
		o.devA[k], o.devB[k] = fmt.Sprintf("%sa%d", pfx, k), fmt.Sprintf("%sb%d", pfx, k)
		o.portA[k], o.portB[k] = fmt.Sprintf("%sma%d", pfx, k), fmt.Sprintf("%smb%d", pfx, k)
		o.br[k] = fmt.Sprintf("%sbr%d", pfx, k)
		devA, devB := o.devA[k], o.devB[k]
		o.cleanup = append(o.cleanup, func() {
			exec.Command("ip", "link", "del", devA).Run()
			exec.Command("ip", "link", "del", devB).Run()
		})
		steps := [][]string{
			{"ip", "link", "add", o.devA[k], "type", "veth", "peer", "name", o.portA[k]},
			{"ip", "link", "add", o.devB[k], "type", "veth", "peer", "name", o.portB[k]},
			{"ip", "link", "set", o.devA[k], "netns", o.ns["a"]},
			{"ip", "link", "set", o.devB[k], "netns", o.ns["b"]},
			{"ip", "link", "set", o.portA[k], "netns", o.ns["m"]},
			{"ip", "link", "set", o.portB[k], "netns", o.ns["m"]},
			{"ip", "-n", o.ns["m"], "link", "add", o.br[k], "type", "bridge"},
			{"ip", "-n", o.ns["m"], "link", "set", o.br[k], "up"},
			{"ip", "-n", o.ns["m"], "link", "set", o.portA[k], "master", o.br[k], "up"},
			{"ip", "-n", o.ns["m"], "link", "set", o.portB[k], "master", o.br[k], "up"},
		}
		if addrs {
			steps = append(steps,
				[]string{"ip", "-n", o.ns["a"], "addr", "add", fmt.Sprintf("10.10.%d.1/24", k+1), "dev", o.devA[k]},
				[]string{"ip", "-n", o.ns["b"], "addr", "add", fmt.Sprintf("10.10.%d.2/24", k+1), "dev", o.devB[k]})
		}
		steps = append(steps,
			[]string{"ip", "-n", o.ns["a"], "link", "set", o.devA[k], "up"},
			[]string{"ip", "-n", o.ns["b"], "link", "set", o.devB[k], "up"})
		for _, s := range steps {
			if err := sh(s...); err != nil {
				return err
			}
		}
	}
	return nil
}
