package main

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ouro-net/ouro/internal/testenv"
	"github.com/ouro-net/ouro/internal/topo"
	"github.com/ouro-net/ouro/lib/ctrl"
)

func TestMain(m *testing.M) {
	testenv.MaybeRunIPCP()
	code := m.Run()
	testenv.CleanupBinaries()
	os.Exit(code)
}

var (
	ovpnOnce sync.Once
	ovpnErr  error
)

// binaries builds irm and the tools (testenv) and ovpn next to them, and
// returns their directory.
func binaries(t *testing.T) string {
	t.Helper()
	dir := testenv.Binaries(t)
	ovpnOnce.Do(func() {
		root, err := testenv.ModuleRoot()
		if err != nil {
			ovpnErr = err
			return
		}
		args := append([]string{"build", "-buildvcs=false"}, raceArgs...)
		args = append(args, "-o", filepath.Join(dir, "ovpn"), "./tools/ovpn")
		cmd := exec.Command("go", args...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			ovpnErr = fmt.Errorf("go build ovpn: %v\n%s", err, out)
		}
	})
	if ovpnErr != nil {
		t.Fatal(ovpnErr)
	}
	return dir
}

// pair is two namespaces A and B joined by two veth pairs, an IRMd in
// each, an eth-dix IPCP on every veth end (layers e1 and e2), and the
// unicast layer "net" over both: A and B are adjacent twice.
type pair struct {
	ns     map[string]string            // host -> namespace
	dir    map[string]string            // host -> IRMd run directory
	daemon map[string]*testenv.Proc     // host -> IRMd
	dev    map[string]map[string]string // host -> lower layer -> veth end
	lowers []string                     // the lower layers, one veth pair each
}

var pairLowers = []string{"e1", "e2"}

func (p *pair) irm(t *testing.T, host string, args ...string) string {
	t.Helper()
	return testenv.MustRun(t, p.ns[host], p.dir[host], "irm", args...)
}

func (p *pair) register(t *testing.T, host, name string) {
	t.Helper()
	args := []string{"name", "register", name}
	for _, l := range p.lowers {
		args = append(args, "layer", l)
	}
	p.irm(t, host, args...)
}

// show returns the text of `irm layer show net` at host (for logs).
func (p *pair) show(host string) (string, error) {
	var info ctrl.LayerInfo
	if err := topo.Call(p.dir[host], ctrl.OpLayerShow, ctrl.LayerShow{Layer: "net"}, &info); err != nil {
		return "", err
	}
	return info.Render(), nil
}

// status returns the status of layer net at host.
func (p *pair) status(host string) (*ctrl.UnicastStatus, error) {
	var info ctrl.LayerInfo
	if err := topo.Call(p.dir[host], ctrl.OpLayerShow, ctrl.LayerShow{Layer: "net"}, &info); err != nil {
		return nil, err
	}
	return topo.UnicastOf(info)
}

// knows says whether host's directory holds name.
func (p *pair) knows(host, name string) bool {
	u, err := p.status(host)
	if err != nil {
		return false
	}
	for _, e := range u.Directory {
		if slices.Contains(e.Names, name) {
			return true
		}
	}
	return false
}

// buildPair builds the two-path pair and waits until A routes to B over
// both paths.
func buildPair(t *testing.T) *pair {
	t.Helper()
	return buildPairOver(t, pairLowers)
}

// buildPairOver builds the pair with one veth pair per lower layer and
// waits until A routes to B over all of them.
func buildPairOver(t *testing.T, lowers []string) *pair {
	t.Helper()
	testenv.RequireRoot(t)
	binaries(t)
	t.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	p := &pair{ns: map[string]string{}, dir: map[string]string{}, daemon: map[string]*testenv.Proc{},
		dev: map[string]map[string]string{"a": {}, "b": {}}, lowers: lowers}
	for _, h := range []string{"a", "b"} {
		p.ns[h] = testenv.NetNS(t)
	}
	for _, l := range lowers {
		p.dev["a"][l], p.dev["b"][l] = testenv.Veth(t, p.ns["a"], p.ns["b"])
	}
	for _, h := range []string{"a", "b"} {
		p.dir[h], p.daemon[h] = testenv.StartDaemon(t, p.ns[h])
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, h := range []string{"a", "b"} {
				text, _ := p.show(h)
				t.Logf("layer show net at %s:\n%s\nIRMd log of %s:\n%s", h, text, h, p.daemon[h].Out.String())
			}
		}
	})
	for _, h := range []string{"a", "b"} {
		for _, l := range lowers {
			p.irm(t, h, "ipcp", "bootstrap", "type", "eth-dix", "name", h+"."+l, "layer", l, "dev", p.dev[h][l])
		}
	}
	p.irm(t, "a", "ipcp", "bootstrap", "type", "unicast", "name", "a", "layer", "net", "autobind", "multiplier", "10")
	p.register(t, "a", "a")
	p.register(t, "a", "net")
	p.irm(t, "b", "ipcp", "create", "type", "unicast", "name", "b")
	p.irm(t, "b", "ipcp", "enroll", "name", "b", "layer", "net", "dst", "a", "autobind")
	p.register(t, "b", "b")
	for _, l := range lowers {
		p.irm(t, "b", "ipcp", "connect", "name", "b", "dst", "a", "layer", l)
	}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if u, err := p.status("a"); err == nil && topo.RouteNextHops(u, "b") >= len(lowers) {
			return p
		}
	}
	text, _ := p.show("a")
	t.Fatalf("A's route to B never ran over all %d paths:\n%s", len(lowers), text)
	return nil
}

// ovpn starts ovpn at host with args (plus --json) and waits for the
// status line event ("serving" or "up").
func (p *pair) ovpn(t *testing.T, host, want string, args ...string) *testenv.Proc {
	t.Helper()
	proc := testenv.Start(t, p.ns[host], p.dir[host], "ovpn", append(args, "--json")...)
	waitEvent(t, proc, want, 0, 20*time.Second)
	return proc
}

// events decodes the JSON status lines a process printed so far.
func events(proc *testenv.Proc) []event {
	var out []event
	sc := bufio.NewScanner(strings.NewReader(proc.Out.String()))
	for sc.Scan() {
		var e event
		if json.Unmarshal(sc.Bytes(), &e) == nil && e.Event != "" {
			out = append(out, e)
		}
	}
	return out
}

// waitEvent waits until proc printed more than skip events named want,
// and returns the last.
func waitEvent(t *testing.T, proc *testenv.Proc, want string, skip int, timeout time.Duration) event {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		n := 0
		var last event
		for _, e := range events(proc) {
			if e.Event == want {
				n++
				last = e
			}
		}
		if n > skip {
			return last
		}
		select {
		case <-proc.Exited():
			t.Fatalf("ovpn exited before %q:\n%s", want, proc.Out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q event in %v:\n%s", want, timeout, proc.Out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// icmpEcho sends ICMP echo requests from namespace ns to dst until one
// is answered or the attempts run out (the ping tool may be missing).
func icmpEcho(t *testing.T, ns string, dst netip.Addr, attempts int) error {
	t.Helper()
	var result error
	testenv.InNetNS(t, ns, func() {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMP)
		if err != nil {
			result = err
			return
		}
		defer unix.Close(fd)
		tv := unix.Timeval{Usec: 500000}
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		id := uint16(os.Getpid())
		buf := make([]byte, 1500)
		for seq := 1; seq <= attempts; seq++ {
			msg := []byte{8, 0, 0, 0, byte(id >> 8), byte(id), byte(seq >> 8), byte(seq)}
			msg = append(msg, "ovpn-icmp-echo-test-payload"...)
			binary.BigEndian.PutUint16(msg[2:], inetChecksum(msg))
			if err := unix.Sendto(fd, msg, 0, &unix.SockaddrInet4{Addr: dst.As4()}); err != nil {
				result = fmt.Errorf("send echo: %w", err)
				continue
			}
			for {
				n, _, err := unix.Recvfrom(fd, buf, 0)
				if err != nil {
					result = fmt.Errorf("no echo reply to seq %d: %w", seq, err)
					break
				}
				if n < 28 {
					continue
				}
				hl := int(buf[0]&0x0f) * 4
				icmp := buf[hl:n]
				src := netip.AddrFrom4([4]byte(buf[12:16]))
				if src == dst && len(icmp) >= 8 && icmp[0] == 0 && binary.BigEndian.Uint16(icmp[4:]) == id &&
					int(binary.BigEndian.Uint16(icmp[6:])) == seq {
					result = nil
					return
				}
			}
		}
	})
	return result
}

func inetChecksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

// dtOutByLower sums the packets A sent on its data-transfer adjacencies
// per lower layer (from `irm layer show net`: ID PEER ADDRESS LOWER COMP
// COST STATE PKTS-IN/OUT ...).
func (p *pair) dtOutByLower(t *testing.T) map[string]uint64 {
	t.Helper()
	u, err := p.status("a")
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]uint64{}
	for _, a := range u.Adjacencies {
		m[a.Lower] += a.PacketsOut
	}
	return m
}

// busyLower returns the lower layer that carried most of A's packets
// over d while traffic runs.
func (p *pair) busyLower(t *testing.T, d time.Duration) string {
	t.Helper()
	before := p.dtOutByLower(t)
	time.Sleep(d)
	after := p.dtOutByLower(t)
	best, most := "", uint64(0)
	for _, l := range pairLowers {
		if n := after[l] - before[l]; best == "" || n > most {
			best, most = l, n
		}
	}
	t.Logf("traffic leaves A over %s (packets out in %v: e1 %d, e2 %d)", best, d,
		after["e1"]-before["e1"], after["e2"]-before["e2"])
	return best
}

// cut sets A's end of lower down (carrier loss on both ends) and
// returns a function that restores it (also run at cleanup).
func (p *pair) cut(t *testing.T, lower string) func() {
	t.Helper()
	dev := p.dev["a"][lower]
	testenv.LinkSet(t, p.ns["a"], dev, "down")
	var once sync.Once
	restore := func() { once.Do(func() { exec.Command("ip", "-n", p.ns["a"], "link", "set", dev, "up").Run() }) }
	t.Cleanup(restore)
	return restore
}

// tunnel is a pair with ovpn serving at B (10.9.0.1) and dialled from A
// (10.9.0.2).
type tunnel struct {
	*pair
	server, client       *testenv.Proc
	serverDev, clientDev string
}

var (
	serverIP = netip.MustParseAddr("10.9.0.1")
	clientIP = netip.MustParseAddr("10.9.0.2")
)

func startTunnel(t *testing.T) *tunnel {
	p := buildPair(t)
	tu := &tunnel{pair: p, serverDev: testenv.UniqueName("ovs"), clientDev: testenv.UniqueName("ovc")}
	p.irm(t, "b", "name", "register", "ovpn", "layer", "net")
	tu.server = p.ovpn(t, "b", "serving", "-l", "-n", "ovpn", "--ip", "10.9.0.1/24", "--dev", tu.serverDev,
		"--max-clients", "3", "--status", "100ms")
	// The name must reach A's directory before A can allocate to it.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if p.knows("a", "ovpn") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("A never learnt the name ovpn")
		}
	}
	// --dead 2s: the partition subtest outlasts it in a few seconds.
	tu.client = p.ovpn(t, "a", "up", "-n", "ovpn", "--ip", "10.9.0.2/24", "--dev", tu.clientDev, "--dead", "2s")
	return tu
}

// TestOvpnNetns runs ovpn between two namespaces joined by two paths:
// ping across the tunnel, the errors and abuses a server must survive,
// a TCP request stream and a bulk TCP transfer each across the loss of
// the path carrying them, a partition that outlasts the client's flow
// and heals, a server restart the client rides out, and the TUN devices
// gone after SIGTERM.
func TestOvpnNetns(t *testing.T) {
	testenv.RequireRoot(t)
	tu := startTunnel(t)
	up := waitEvent(t, tu.client, "up", 0, time.Second)
	t.Logf("client up: dev %s mtu %d flow %d layer %s", up.Dev, up.MTU, up.Flow, up.Layer)
	if up.MTU < minMTU || up.Layer != "net" {
		t.Errorf("client up event %+v: want an MTU from the flow and layer net", up)
	}

	t.Run("ping", func(t *testing.T) {
		if err := icmpEcho(t, tu.ns["a"], serverIP, 10); err != nil {
			t.Fatalf("ping 10.9.0.1 from A: %v", err)
		}
		if err := icmpEcho(t, tu.ns["b"], clientIP, 10); err != nil {
			t.Fatalf("ping 10.9.0.2 from B: %v", err)
		}
	})
	t.Run("errors", func(t *testing.T) { tu.errors(t) })
	t.Run("abuse", func(t *testing.T) { tu.abuse(t) })
	t.Run("requests across a cut", func(t *testing.T) { tu.requests(t) })
	t.Run("bulk across a cut", func(t *testing.T) { tu.bulk(t, 20<<20) })
	t.Run("partition heals", func(t *testing.T) { tu.partition(t) })
	t.Run("server restart", func(t *testing.T) { tu.restart(t) })
	t.Run("SIGTERM removes the TUN", func(t *testing.T) {
		tu.client.Stop()
		tu.server.Stop()
		for _, c := range []struct{ host, dev string }{{"a", tu.clientDev}, {"b", tu.serverDev}} {
			if out, err := exec.Command("ip", "-n", tu.ns[c.host], "link", "show", c.dev).CombinedOutput(); err == nil {
				t.Errorf("%s still exists after SIGTERM:\n%s", c.dev, out)
			}
		}
		if e := waitEvent(t, tu.client, "stopped", 0, time.Second); e.Stats == nil || e.Stats.PacketsIn == 0 || e.Stats.PacketsOut == 0 {
			t.Errorf("client's final counters: %+v", e.Stats)
		}
	})
}

// errors: the clear errors of the command line's users.
func (tu *tunnel) errors(t *testing.T) {
	// Another server on an address in use.
	out, code := testenv.Run(t, tu.ns["b"], tu.dir["b"], "ovpn", "-l", "-n", "ovpn2", "--ip", "10.9.0.1/24")
	if code != 1 || !strings.Contains(out, "address 10.9.0.1 is in use") {
		t.Errorf("server on an address in use: exit %d:\n%s", code, out)
	}
	// A client of a name nobody serves.
	out, code = testenv.Run(t, tu.ns["a"], tu.dir["a"], "ovpn", "-n", "nosuch", "--ip", "10.9.0.9/24")
	if code != 1 || !strings.Contains(out, `allocate a flow to "nosuch"`) || !strings.Contains(out, "registered") {
		t.Errorf("client of an unknown name: exit %d:\n%s", code, out)
	}
	// A second client claiming the first one's address.
	out, code = testenv.Run(t, tu.ns["a"], tu.dir["a"], "ovpn", "-n", "ovpn", "--ip", "10.9.0.2/24")
	if code != 1 || !strings.Contains(out, "server refused: address 10.9.0.2 is in use by another client") {
		t.Errorf("client claiming an address in use: exit %d:\n%s", code, out)
	}
	// Without privilege: the binary run as nobody from a world-readable copy.
	dir, err := os.MkdirTemp("", "ovpn-nobody")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	data, err := os.ReadFile(filepath.Join(binaries(t), "ovpn"))
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "ovpn")
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", tu.ns["b"], "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
		bin, "-l", "-n", "ovpn3", "--ip", "10.9.3.1/24", "--rundir", tu.dir["b"])
	cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
	b, err := cmd.CombinedOutput()
	if _, lerr := exec.LookPath("setpriv"); lerr != nil {
		t.Logf("setpriv missing: not-root case not run")
	} else if err == nil || !strings.Contains(string(b), "CAP_NET_ADMIN") {
		t.Errorf("server as nobody: %v:\n%s", err, b)
	} else {
		t.Logf("as nobody: %s", strings.TrimSpace(string(b)))
	}
}
