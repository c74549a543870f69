package main

// -congestion: a real bottleneck. Two network namespaces, A and B, are
// joined through a bridge in a third, M; tbf shapes both bridge ports
// to 100 Mbit/s (burst 32 kB, latency 20 ms), in the middle because an
// AF_PACKET sender bypasses its own qdisc. An eth-dix layer runs on the
// veths with a unicast layer "net" over it, and A and B have IPv4
// addresses on the same veths for TCP. In one run it measures, on that
// one path:
//
//	tcp       Go TCP, one stream A to B (kernel congestion control)
//	reliable  one reliable ouro flow A to B (FRCT congestion control)
//	operf     the same through operf's client code (-q reliable -s 1400)
//	ping      a low-latency ouro flow pinging every 10 ms: idle, while
//	          the reliable flow fills the path, while TCP does, and
//	          beside a raw ouro flood (no congestion control)
//
// The servers (sink and echo) run in this process: an ouro application
// talks to its IRMd through the run directory, which no namespace
// hides, and the TCP sockets are opened on a thread moved into the
// namespace (setns), so no extra process is needed.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ouro-net/ouro/flow"
	"github.com/ouro-net/ouro/flow/ping"
	"github.com/ouro-net/ouro/internal/topo"
	"github.com/ouro-net/ouro/lib/ctrl"
	"github.com/ouro-net/ouro/lib/qos"
	"github.com/ouro-net/ouro/lib/rundir"
	"github.com/ouro-net/ouro/tools/operf/perf"
)

// Shape of the bottleneck: 100 Mbit/s through tbf.
const (
	shapeRate    = "100mbit"
	shapeRateBps = 100e6
	shapeBurst   = "32kb"
	shapeLatency = "20ms"
	bulkName     = "ccbulk"
	perfName2    = "ccperf"
	echoName     = "ccecho"
	bulkMsg      = 1400
	tcpPort      = 5201
)

// shapedPath is the bridge-and-tbf path between two namespaces.
type shapedPath struct {
	nsA, nsM, nsB string
	dirA, dirB    string
	devA2         string // A's end of the second path (paths 2)
	ipB           string
	irm           string
	logLevel      string
	log           io.Writer
	daemons       []*exec.Cmd
	undo          []func()
}

var shapeSeq atomic.Uint64

func shapeName(kind string) string {
	return fmt.Sprintf("cc%s%d%d", kind, os.Getpid()%100000, shapeSeq.Add(1))
}

func runCmd(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// buildShapedPath builds the path; Close undoes everything, also after
// an error part way (buildShapedPath calls it itself then).
// With paths 2 a second, identical path joins A and B (its own veths,
// bridge and tbf, an eth-dix layer "eth2" and a second adjacency of the
// unicast layer over it), so the layer has two equal-cost next hops.
func buildShapedPath(ctx context.Context, irm, logLevel string, log io.Writer, paths int) (p *shapedPath, err error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("needs root (network namespaces, bridge, tbf, AF_PACKET)")
	}
	p = &shapedPath{irm: irm, logLevel: logLevel, log: log, ipB: "10.211.0.2"}
	defer func() {
		if err != nil {
			p.Close()
			p = nil
		}
	}()
	for _, ns := range []*string{&p.nsA, &p.nsM, &p.nsB} {
		*ns = shapeName("ns")
		if err := runCmd("ip", "netns", "add", *ns); err != nil {
			return nil, err
		}
		name := *ns
		p.undo = append(p.undo, func() { exec.Command("ip", "netns", "del", name).Run() })
		if err := runCmd("ip", "-n", name, "link", "set", "lo", "up"); err != nil {
			return nil, err
		}
	}
	br := shapeName("br")
	devA, devB := shapeName("a"), shapeName("b")
	portA, portB := shapeName("pa"), shapeName("pb")
	steps := [][]string{
		{"ip", "link", "add", devA, "type", "veth", "peer", "name", portA},
		{"ip", "link", "set", devA, "netns", p.nsA},
		{"ip", "link", "set", portA, "netns", p.nsM},
		{"ip", "link", "add", devB, "type", "veth", "peer", "name", portB},
		{"ip", "link", "set", devB, "netns", p.nsB},
		{"ip", "link", "set", portB, "netns", p.nsM},
		{"ip", "-n", p.nsM, "link", "add", br, "type", "bridge"},
		{"ip", "-n", p.nsM, "link", "set", portA, "master", br},
		{"ip", "-n", p.nsM, "link", "set", portB, "master", br},
		{"ip", "-n", p.nsM, "link", "set", br, "up"},
		{"ip", "-n", p.nsM, "link", "set", portA, "up"},
		{"ip", "-n", p.nsM, "link", "set", portB, "up"},
		{"ip", "-n", p.nsA, "addr", "add", "10.211.0.1/24", "dev", devA},
		{"ip", "-n", p.nsB, "addr", "add", p.ipB + "/24", "dev", devB},
		{"ip", "-n", p.nsA, "link", "set", devA, "up"},
		{"ip", "-n", p.nsB, "link", "set", devB, "up"},
		{"ip", "netns", "exec", p.nsM, "tc", "qdisc", "add", "dev", portA, "root", "tbf", "rate", shapeRate, "burst", shapeBurst, "latency", shapeLatency},
		{"ip", "netns", "exec", p.nsM, "tc", "qdisc", "add", "dev", portB, "root", "tbf", "rate", shapeRate, "burst", shapeBurst, "latency", shapeLatency},
	}
	p.undo = append(p.undo, func() {
		exec.Command("ip", "link", "del", devA).Run()
		exec.Command("ip", "link", "del", devB).Run()
	})
	devA2, devB2 := shapeName("a"), shapeName("b")
	if paths == 2 {
		p.devA2 = devA2
		br2 := shapeName("br")
		portA2, portB2 := shapeName("pa"), shapeName("pb")
		steps = append(steps, [][]string{
			{"ip", "link", "add", devA2, "type", "veth", "peer", "name", portA2},
			{"ip", "link", "set", devA2, "netns", p.nsA},
			{"ip", "link", "set", portA2, "netns", p.nsM},
			{"ip", "link", "add", devB2, "type", "veth", "peer", "name", portB2},
			{"ip", "link", "set", devB2, "netns", p.nsB},
			{"ip", "link", "set", portB2, "netns", p.nsM},
			{"ip", "-n", p.nsM, "link", "add", br2, "type", "bridge"},
			{"ip", "-n", p.nsM, "link", "set", portA2, "master", br2},
			{"ip", "-n", p.nsM, "link", "set", portB2, "master", br2},
			{"ip", "-n", p.nsM, "link", "set", br2, "up"},
			{"ip", "-n", p.nsM, "link", "set", portA2, "up"},
			{"ip", "-n", p.nsM, "link", "set", portB2, "up"},
			{"ip", "-n", p.nsA, "link", "set", devA2, "up"},
			{"ip", "-n", p.nsB, "link", "set", devB2, "up"},
			{"ip", "netns", "exec", p.nsM, "tc", "qdisc", "add", "dev", portA2, "root", "tbf", "rate", shapeRate, "burst", shapeBurst, "latency", shapeLatency},
			{"ip", "netns", "exec", p.nsM, "tc", "qdisc", "add", "dev", portB2, "root", "tbf", "rate", shapeRate, "burst", shapeBurst, "latency", shapeLatency},
		}...)
		p.undo = append(p.undo, func() {
			exec.Command("ip", "link", "del", devA2).Run()
			exec.Command("ip", "link", "del", devB2).Run()
		})
	}
	for _, s := range steps {
		if err := runCmd(s[0], s[1:]...); err != nil {
			return nil, err
		}
	}
	if p.dirA, err = p.daemon(ctx, p.nsA); err != nil {
		return nil, err
	}
	if p.dirB, err = p.daemon(ctx, p.nsB); err != nil {
		return nil, err
	}
	irmA := func(args ...string) error { return p.irmAt(p.nsA, p.dirA, args...) }
	irmB := func(args ...string) error { return p.irmAt(p.nsB, p.dirB, args...) }
	setup := []func() error{
		func() error {
			return irmA("ipcp", "bootstrap", "type", "eth-dix", "name", "a.eth", "layer", "eth", "dev", devA)
		},
		func() error {
			return irmB("ipcp", "bootstrap", "type", "eth-dix", "name", "b.eth", "layer", "eth", "dev", devB)
		},
		func() error {
			return irmA("ipcp", "bootstrap", "type", "unicast", "name", "a", "layer", "net", "autobind")
		},
		func() error { return irmA("name", "register", "a", "layer", "eth") },
		func() error { return irmA("name", "register", "net", "layer", "eth") },
		func() error { return irmB("ipcp", "create", "type", "unicast", "name", "b") },
		func() error { return irmB("ipcp", "enroll", "name", "b", "layer", "net", "autobind") },
		func() error { return irmB("name", "register", "b", "layer", "eth") },
		func() error { return irmB("ipcp", "connect", "name", "b", "dst", "a", "layer", "eth") },
		func() error { return irmB("name", "register", bulkName, "layer", "net") },
		func() error { return irmB("name", "register", echoName, "layer", "net") },
		func() error { return irmB("name", "register", perfName2, "layer", "net") },
	}
	if paths == 2 {
		setup = append(setup,
			func() error {
				return irmA("ipcp", "bootstrap", "type", "eth-dix", "name", "a.eth2", "layer", "eth2", "dev", devA2)
			},
			func() error {
				return irmB("ipcp", "bootstrap", "type", "eth-dix", "name", "b.eth2", "layer", "eth2", "dev", devB2)
			},
			func() error { return irmA("name", "register", "a", "layer", "eth2") },
			func() error { return irmB("name", "register", "b", "layer", "eth2") },
			func() error { return irmB("ipcp", "connect", "name", "b", "dst", "a", "layer", "eth2") },
		)
	}
	for _, s := range setup {
		if err := s(); err != nil {
			return nil, err
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var info ctrl.LayerInfo
		err := topo.Call(p.dirA, ctrl.OpLayerShow, ctrl.LayerShow{Layer: "net"}, &info)
		if u, uerr := topo.UnicastOf(info); err == nil && uerr == nil && topo.RouteNextHops(u, "b") >= 1 && fibFlows(u, "b") >= paths {
			return p, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, fmt.Errorf("no route from a to b after 30 s (%v):\n%s", err, info.Render())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// fibFlows returns how many lower flows (adjacencies) the FIB holds
// towards the member called name.
func fibFlows(u *ctrl.UnicastStatus, name string) int {
	for _, r := range u.Routes {
		if r.IPCP == name {
			return len(r.Flows)
		}
	}
	return 0
}

// daemon starts an IRMd inside ns and waits for it to answer.
func (p *shapedPath) daemon(ctx context.Context, ns string) (string, error) {
	dir, err := os.MkdirTemp("", "occ")
	if err != nil {
		return "", err
	}
	p.undo = append(p.undo, func() { os.RemoveAll(dir) })
	cmd := exec.Command("ip", "netns", "exec", ns, p.irm, "daemon", "--rundir", dir, "--log-level", p.logLevel)
	cmd.Stdout, cmd.Stderr = p.log, p.log
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("start IRMd in %s: %w", ns, err)
	}
	p.daemons = append(p.daemons, cmd)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && ctx.Err() == nil; time.Sleep(20 * time.Millisecond) {
		if topo.Call(dir, ctrl.OpIPCPList, nil, &ctrl.IPCPList{}) == nil {
			return dir, nil
		}
	}
	return "", fmt.Errorf("IRMd in %s did not answer", ns)
}

// irmAt runs an irm command against the IRMd of dir inside ns.
func (p *shapedPath) irmAt(ns, dir string, args ...string) error {
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, p.irm}, args...)...)
	cmd.Env = append(os.Environ(), rundir.EnvVar+"="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("irm %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Close stops the daemons (SIGTERM, then SIGKILL) and removes the
// namespaces, links and run directories.
func (p *shapedPath) Close() {
	for _, d := range p.daemons {
		d.Process.Signal(unix.SIGTERM)
		done := make(chan struct{})
		go func() { d.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			d.Process.Kill()
			<-done
		}
	}
	p.daemons = nil
	for i := len(p.undo) - 1; i >= 0; i-- {
		p.undo[i]()
	}
	p.undo = nil
}

// inNetns runs fn on an OS thread moved into namespace ns. The thread
// stays locked and exits with the goroutine, so no other goroutine ever
// runs in that namespace; sockets fn opens stay in it.
func inNetns(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		f, err := os.Open("/var/run/netns/" + ns)
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// sink counts what one conn delivers. With messages set it also checks
// that every read is one whole message carrying the next index (an
// ouro flow keeps message boundaries), so the data arrived intact.
type sink struct {
	bytes    atomic.Int64
	bad      atomic.Int64
	messages bool
	done     chan struct{}
}

func newSink(c net.Conn, messages bool) *sink {
	s := &sink{messages: messages, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		defer c.Close()
		buf := make([]byte, 1<<16)
		var next uint64
		for {
			n, err := c.Read(buf)
			if n > 0 {
				if s.messages {
					if n != bulkMsg || binary.BigEndian.Uint64(buf) != next {
						s.bad.Add(1)
					}
					next++
				}
				s.bytes.Add(int64(n))
			}
			if err != nil {
				return
			}
		}
	}()
	return s
}

// bulk writes numbered bulkMsg-byte messages to c for d.
func bulk(c net.Conn, d time.Duration) error {
	msg := make([]byte, bulkMsg)
	end := time.Now().Add(d)
	c.SetWriteDeadline(end)
	for i := uint64(0); time.Now().Before(end); i++ {
		binary.BigEndian.PutUint64(msg, i)
		if _, err := c.Write(msg); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return nil
			}
			return err
		}
	}
	return nil
}

// BulkResult is one bulk transfer's goodput.
type BulkResult struct {
	Mbps     float64 `json:"mbps"` // goodput after the first second
	Bytes    int64   `json:"bytes"`
	Bad      int64   `json:"bad_messages,omitempty"`
	CloseErr string  `json:"close_error,omitempty"`
	// FRCT sender state at the end (reliable flows only).
	Cwnd          int     `json:"cwnd,omitempty"`
	SRTTMS        float64 `json:"srtt_ms,omitempty"`
	BaseRTTMS     float64 `json:"base_rtt_ms,omitempty"`
	Retransmitted uint64  `json:"retransmitted,omitempty"`
	DelayCuts     uint64  `json:"delay_cuts,omitempty"`
	LossCuts      uint64  `json:"loss_cuts,omitempty"`
	RTOCuts       uint64  `json:"rto_cuts,omitempty"`
	ECNCuts       uint64  `json:"ecn_cuts,omitempty"`
	Bends         uint64  `json:"bends,omitempty"`
	Timeouts      uint64  `json:"timeouts,omitempty"`
	// Packing (reliable flows): the lower flow's MTU, the window in
	// bytes, DATA packets sent (first transmissions), how many were
	// packed and the messages they carried, and messages per packet.
	MTU            int     `json:"mtu,omitempty"`
	CwndBytes      int     `json:"cwnd_bytes,omitempty"`
	DataPackets    uint64  `json:"data_packets,omitempty"`
	PackedPackets  uint64  `json:"packed_packets,omitempty"`
	PackedMessages uint64  `json:"packed_messages,omitempty"`
	MsgsPerPacket  float64 `json:"msgs_per_packet,omitempty"`
}

// PingResult is a low-latency ping run.
type PingResult struct {
	During  string  `json:"during"`
	AvgMS   float64 `json:"rtt_avg_ms"`
	P99MS   float64 `json:"rtt_p99_ms"`
	MaxMS   float64 `json:"rtt_max_ms"`
	LossPct float64 `json:"loss_pct"`
	// BulkMbps is the goodput of the bulk flow that ran meanwhile.
	BulkMbps float64 `json:"bulk_mbps,omitempty"`
}

// CongestionResult is the -congestion report.
type CongestionResult struct {
	Started   time.Time  `json:"started"`
	Path      string     `json:"path"`
	DurationS float64    `json:"duration_s"`
	TCP       BulkResult `json:"tcp"`
	Reliable  BulkResult `json:"reliable"`
	// Operf is `operf -q reliable -s 1400 -d D` (the tool's client code)
	// over the same path.
	Operf perf.Stats   `json:"operf_reliable"`
	Ratio float64      `json:"reliable_to_tcp"`
	Pings []PingResult `json:"pings"`
	// Shared is two reliable flows started together on the path.
	Shared []BulkResult `json:"two_reliable_flows"`
	Jain   float64      `json:"two_flows_jain"`
	// TwoPaths (with -congestion-paths 2, instead of everything above):
	// trials of two reliable flows at once, fresh flows each time, over
	// two parallel paths (per-flow ECMP hashing and path bending decide
	// which path each takes).
	TwoPaths []TwoPathTrial `json:"two_paths,omitempty"`
	// Cut is two reliable flows at once after the second path was cut
	// (A's end of it set down), sharing the one left; CutJain is their
	// Jain index.
	Cut     *TwoPathTrial `json:"one_path_cut,omitempty"`
	CutJain float64       `json:"one_path_cut_jain,omitempty"`
}

// jain is Jain's fairness index of two rates.
func jain(x, y float64) float64 {
	if x+y <= 0 {
		return 0
	}
	return (x + y) * (x + y) / (2 * (x*x + y*y))
}

// cutPath2 sets A's end of the second path down and waits until A's
// forwarding table holds one lower flow towards b.
func (p *shapedPath) cutPath2(ctx context.Context) error {
	if err := runCmd("ip", "-n", p.nsA, "link", "set", p.devA2, "down"); err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var info ctrl.LayerInfo
		err := topo.Call(p.dirA, ctrl.OpLayerShow, ctrl.LayerShow{Layer: "net"}, &info)
		if u, uerr := topo.UnicastOf(info); err == nil && uerr == nil && fibFlows(u, "b") == 1 {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("the cut path is still in a's table after 30 s (%v)", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TwoPathTrial is one trial of two reliable flows over two paths.
type TwoPathTrial struct {
	Flows     []BulkResult `json:"flows"`
	TotalMbps float64      `json:"total_mbps"`
	// Packets A's unicast IPCP sent over each path during the trial.
	PacketsEth  uint64 `json:"packets_path1"`
	PacketsEth2 uint64 `json:"packets_path2"`
}

// sentByLower returns the packets A's unicast IPCP sent per lower layer.
func (p *shapedPath) sentByLower() map[string]uint64 {
	out := map[string]uint64{}
	var info ctrl.LayerInfo
	if err := topo.Call(p.dirA, ctrl.OpLayerShow, ctrl.LayerShow{Layer: "net"}, &info); err != nil {
		return out
	}
	u, err := topo.UnicastOf(info)
	if err != nil {
		return out
	}
	for _, a := range u.Adjacencies {
		out[a.Lower] += a.PacketsOut
	}
	return out
}

// servers runs the sink and echo on B: ouro names through B's IRMd,
// TCP on B's address inside B's namespace.
type servers struct {
	p          *shapedPath
	tcp        net.Listener
	lb, le, lp *flow.Listener
	sinks      chan *sink
	tsinks     chan *sink
	wg         sync.WaitGroup
	cancel     context.CancelFunc
}

func startServers(p *shapedPath) (*servers, error) {
	s := &servers{p: p, sinks: make(chan *sink, 4), tsinks: make(chan *sink, 4)}
	var err error
	if err = inNetns(p.nsB, func() error {
		s.tcp, err = net.Listen("tcp4", fmt.Sprintf("%s:%d", p.ipB, tcpPort))
		return err
	}); err != nil {
		return nil, err
	}
	if s.lb, err = flow.Listen(bulkName, flow.WithRunDir(p.dirB)); err != nil {
		s.tcp.Close()
		return nil, err
	}
	if s.le, err = flow.Listen(echoName, flow.WithRunDir(p.dirB)); err != nil {
		s.tcp.Close()
		s.lb.Close()
		return nil, err
	}
	if s.lp, err = flow.Listen(perfName2, flow.WithRunDir(p.dirB)); err != nil {
		s.tcp.Close()
		s.lb.Close()
		s.le.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Add(4)
	go func() {
		defer s.wg.Done()
		perf.ServeFlows(ctx, s.lp, nil, nil)
	}()
	go func() {
		defer s.wg.Done()
		for {
			c, err := s.tcp.Accept()
			if err != nil {
				return
			}
			s.tsinks <- newSink(c, false)
		}
	}()
	go func() {
		defer s.wg.Done()
		for {
			f, err := s.lb.Accept(ctx)
			if err != nil {
				return
			}
			s.sinks <- newSink(f, true)
		}
	}()
	go func() {
		defer s.wg.Done()
		ping.Serve(ctx, s.le, nil)
	}()
	return s, nil
}

func (s *servers) Close() {
	s.cancel()
	s.tcp.Close()
	s.lb.Close()
	s.le.Close()
	s.lp.Close()
	s.wg.Wait()
}

// operf runs the operf client (the tool's own code) over a flow with
// QoS q for d and returns its goodput as the server counted it.
func (s *servers) operf(ctx context.Context, q qos.Spec, d time.Duration) (perf.Stats, error) {
	f, err := s.allocOuro(ctx, perfName2, q)
	if err != nil {
		return perf.Stats{}, err
	}
	defer f.Close()
	res, err := perf.Run(ctx, f, perf.Config{Name: perfName2, QoS: q.String(), Size: bulkMsg, Duration: d})
	if err != nil {
		return perf.Stats{}, err
	}
	return res.Forward, nil
}

// dialTCP connects to B's sink from inside A's namespace.
func (s *servers) dialTCP() (net.Conn, error) {
	var c net.Conn
	err := inNetns(s.p.nsA, func() error {
		var err error
		c, err = net.DialTimeout("tcp4", fmt.Sprintf("%s:%d", s.p.ipB, tcpPort), 5*time.Second)
		return err
	})
	return c, err
}

// allocOuro allocates a flow from A to name with q, retrying while the
// name spreads.
func (s *servers) allocOuro(ctx context.Context, name string, q qos.Spec) (*flow.Flow, error) {
	deadline := time.Now().Add(20 * time.Second)
	for {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		f, err := flow.Alloc(actx, name, q, flow.WithRunDir(s.p.dirA))
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

// runBulk sends for d over conn and measures the goodput at the sink
// after the first second (start-up excluded).
func (s *servers) runBulk(conn net.Conn, sinks chan *sink, d time.Duration) (BulkResult, error) {
	errc := make(chan error, 1)
	go func() { errc <- bulk(conn, d) }()
	var sk *sink
	select {
	case sk = <-sinks:
	case <-time.After(10 * time.Second):
		conn.Close()
		return BulkResult{}, errors.New("the sink never saw the flow")
	}
	time.Sleep(time.Second)
	b0, t0 := sk.bytes.Load(), time.Now()
	err := <-errc
	b1, t1 := sk.bytes.Load(), time.Now()
	r := BulkResult{Mbps: float64(b1-b0) * 8 / t1.Sub(t0).Seconds() / 1e6}
	if f, ok := conn.(*flow.Flow); ok {
		if st := f.Reliability(); st != nil {
			r.Cwnd, r.Retransmitted = st.Cwnd, st.Retransmitted
			r.SRTTMS, r.BaseRTTMS = float64(st.SRTT)/1e6, float64(st.BaseRTT)/1e6
			r.DelayCuts, r.LossCuts, r.RTOCuts = st.DelayCuts, st.LossCuts, st.RTOCuts
			r.ECNCuts, r.Bends, r.Timeouts = st.ECNCuts, st.Bends, st.Timeouts
			r.MTU, r.CwndBytes = st.MTU, st.CwndBytes
			r.PackedPackets, r.PackedMessages = st.PackedSent, st.PackedMessages
		}
	}
	if cerr := conn.Close(); cerr != nil {
		r.CloseErr = cerr.Error()
	}
	if f, ok := conn.(*flow.Flow); ok {
		if st := f.Reliability(); st != nil {
			r.DataPackets = st.DataSent // after Close: every message has left
		}
	}
	select {
	case <-sk.done:
	case <-time.After(15 * time.Second):
		return r, errors.New("the sink never saw the end of the flow")
	}
	r.Bytes, r.Bad = sk.bytes.Load(), sk.bad.Load()
	if r.DataPackets > 0 {
		r.MsgsPerPacket = float64(r.Bytes/bulkMsg) / float64(r.DataPackets)
	}
	return r, err
}

// pingDuring pings over a low-latency flow every 10 ms for d; with
// load set, a bulk flow (reliable ouro, TCP, or a raw ouro flood) runs
// meanwhile.
func (s *servers) pingDuring(ctx context.Context, load string, d time.Duration) (PingResult, error) {
	res := PingResult{During: load}
	var (
		bulkRes BulkResult
		bulkErr error
		wg      sync.WaitGroup
	)
	if load != "idle" {
		var conn net.Conn
		var sinks chan *sink
		var err error
		if load == "tcp" {
			conn, err = s.dialTCP()
			sinks = s.tsinks
		} else if load == "flood" {
			// A raw flow, no congestion control: as fast as A's
			// IPCP takes it.
			conn, err = s.allocOuro(ctx, bulkName, qos.Raw())
			sinks = s.sinks
		} else {
			conn, err = s.allocOuro(ctx, bulkName, qos.Reliable())
			sinks = s.sinks
		}
		if err != nil {
			return res, err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			bulkRes, bulkErr = s.runBulk(conn, sinks, d+2*time.Second)
		}()
		time.Sleep(time.Second + 500*time.Millisecond) // let the bulk flow fill the path
	}
	st, err := ping.Run(ctx, ping.Config{Name: echoName, QoS: qos.LowLatency(), Interval: 10 * time.Millisecond,
		Duration: d, Opts: []flow.Option{flow.WithRunDir(s.p.dirA)}})
	wg.Wait()
	if err != nil {
		return res, err
	}
	if bulkErr != nil {
		return res, bulkErr
	}
	res.AvgMS, res.P99MS, res.MaxMS, res.LossPct = st.AvgMS, st.P99MS, st.MaxMS, st.LossPct
	res.BulkMbps = bulkRes.Mbps
	return res, nil
}

// congestion runs the -congestion measurements.
func congestion(ctx context.Context, e *env, d time.Duration, paths int, out io.Writer) (*CongestionResult, error) {
	r := &CongestionResult{Started: time.Now(), DurationS: d.Seconds(),
		Path: fmt.Sprintf("A - bridge - B, tbf rate %s burst %s latency %s on both bridge ports; eth-dix under a unicast layer; %d-byte messages",
			shapeRate, shapeBurst, shapeLatency, bulkMsg)}
	if paths == 2 {
		r.Path = "two parallel paths, each " + r.Path
	}
	fmt.Fprintf(out, "congestion: building %s\n", r.Path)
	p, err := buildShapedPath(ctx, e.irm, e.logLevel, e.log, paths)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	s, err := startServers(p)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	if paths == 2 {
		for trial := 1; trial <= 6; trial++ {
			before := p.sentByLower()
			fl, err := s.twoFlows(ctx, d)
			if err != nil {
				return nil, fmt.Errorf("two paths, trial %d: %w", trial, err)
			}
			after := p.sentByLower()
			tr := TwoPathTrial{Flows: fl, TotalMbps: fl[0].Mbps + fl[1].Mbps,
				PacketsEth: after["eth"] - before["eth"], PacketsEth2: after["eth2"] - before["eth2"]}
			r.TwoPaths = append(r.TwoPaths, tr)
			fmt.Fprintf(out, "congestion: two paths, trial %d: %.2f + %.2f = %.2f Mbit/s; packets out of A by path 1/2: %d/%d; bends %d/%d, ECN cuts %d/%d, timeouts %d/%d\n",
				trial, fl[0].Mbps, fl[1].Mbps, tr.TotalMbps, tr.PacketsEth, tr.PacketsEth2, fl[0].Bends, fl[1].Bends, fl[0].ECNCuts, fl[1].ECNCuts, fl[0].Timeouts, fl[1].Timeouts)
		}
		if err := p.cutPath2(ctx); err != nil {
			return nil, err
		}
		before := p.sentByLower()
		fl, err := s.twoFlows(ctx, d)
		if err != nil {
			return nil, fmt.Errorf("two flows with one path cut: %w", err)
		}
		after := p.sentByLower()
		r.Cut = &TwoPathTrial{Flows: fl, TotalMbps: fl[0].Mbps + fl[1].Mbps,
			PacketsEth: after["eth"] - before["eth"], PacketsEth2: after["eth2"] - before["eth2"]}
		r.CutJain = jain(fl[0].Mbps, fl[1].Mbps)
		fmt.Fprintf(out, "congestion: path 2 cut: %.2f + %.2f = %.2f Mbit/s, Jain %.3f; packets out of A by path 1/2: %d/%d; timeouts %d/%d\n",
			fl[0].Mbps, fl[1].Mbps, r.Cut.TotalMbps, r.CutJain, r.Cut.PacketsEth, r.Cut.PacketsEth2, fl[0].Timeouts, fl[1].Timeouts)
		return r, nil
	}

	conn, err := s.dialTCP()
	if err != nil {
		return nil, err
	}
	if r.TCP, err = s.runBulk(conn, s.tsinks, d); err != nil {
		return nil, fmt.Errorf("tcp: %w", err)
	}
	fmt.Fprintf(out, "congestion: tcp       %7.2f Mbit/s\n", r.TCP.Mbps)
	f, err := s.allocOuro(ctx, bulkName, qos.Reliable())
	if err != nil {
		return nil, err
	}
	if r.Reliable, err = s.runBulk(f, s.sinks, d); err != nil {
		return nil, fmt.Errorf("reliable: %w", err)
	}
	if r.TCP.Mbps > 0 {
		r.Ratio = r.Reliable.Mbps / r.TCP.Mbps
	}
	fmt.Fprintf(out, "congestion: reliable  %7.2f Mbit/s (%.2fx TCP), cwnd %d, srtt %.2f ms, base %.2f ms, %d retransmitted, %d bad messages\n",
		r.Reliable.Mbps, r.Ratio, r.Reliable.Cwnd, r.Reliable.SRTTMS, r.Reliable.BaseRTTMS, r.Reliable.Retransmitted, r.Reliable.Bad)
	if r.Operf, err = s.operf(ctx, qos.Reliable(), d); err != nil {
		return nil, fmt.Errorf("operf: %w", err)
	}
	fmt.Fprintf(out, "congestion: operf -q reliable -s %d: %7.2f Mbit/s, %d packets, lost %d\n", bulkMsg, r.Operf.Mbps, r.Operf.Received, r.Operf.Lost)
	for _, load := range []string{"idle", "reliable", "tcp", "flood"} {
		pr, err := s.pingDuring(ctx, load, d)
		if err != nil {
			return nil, fmt.Errorf("ping during %s: %w", load, err)
		}
		fmt.Fprintf(out, "congestion: ping every 10 ms, %-8s avg %6.2f ms, p99 %6.2f ms, max %6.2f ms, loss %.1f%%, bulk %.2f Mbit/s\n",
			load, pr.AvgMS, pr.P99MS, pr.MaxMS, pr.LossPct, pr.BulkMbps)
		r.Pings = append(r.Pings, pr)
	}
	if r.Shared, err = s.twoFlows(ctx, d); err != nil {
		return nil, fmt.Errorf("two reliable flows: %w", err)
	}
	x, y := r.Shared[0].Mbps, r.Shared[1].Mbps
	r.Jain = jain(x, y)
	fmt.Fprintf(out, "congestion: two reliable flows %.2f + %.2f = %.2f Mbit/s, Jain %.3f\n", x, y, x+y, r.Jain)
	return r, nil
}

// twoFlows runs two reliable flows at once, the second starting half a
// second after the first, and measures both after the first second.
func (s *servers) twoFlows(ctx context.Context, d time.Duration) ([]BulkResult, error) {
	res := make([]BulkResult, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i := range res {
		f, err := s.allocOuro(ctx, bulkName, qos.Reliable())
		if err != nil {
			return nil, err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i], errs[i] = s.runBulk(f, s.sinks, d+time.Duration(1-i)*time.Second/2)
		}()
		time.Sleep(time.Second / 2)
	}
	wg.Wait()
	return res, errors.Join(errs...)
}
