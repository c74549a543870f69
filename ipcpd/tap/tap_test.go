package tap_test

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/ouro-net/ouro/internal/testenv"
	"github.com/ouro-net/ouro/ipcpd/eth/frame"
	"github.com/ouro-net/ouro/ipcpd/shim"
	"github.com/ouro-net/ouro/ipcpd/tap"
	"github.com/ouro-net/ouro/lib/ctrl"
)

func TestMain(m *testing.M) {
	testenv.MaybeRunIPCP()
	code := m.Run()
	testenv.CleanupBinaries()
	os.Exit(code)
}

// waitListening waits until a process listens on name at the IRMd of dir.
func waitListening(t *testing.T, dir, name string) {
	t.Helper()
	for range 500 {
		var l ctrl.NameList
		if err := testenv.CallDir(dir, ctrl.OpNameList, nil, &l); err == nil {
			for _, n := range l.Names {
				if n.Name == name && len(n.Processes) > 0 {
					return
				}
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("nobody listens on %q", name)
}

var lossRE = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received, ([0-9.]+)% packet loss`)

// TestTapOping runs oping across two TAP devices joined by bridges:
//
//	nsA: IPCP ta ⇄ tapA ─ brA ─ vethA ══ vethB ─ brB ─ tapB ⇄ IPCP tb :nsB
//
// Each IPCP runs in its own namespace (under that namespace's IRMd).
// tapA is created by its IPCP at bootstrap; tapB is created beforehand
// with `ip tuntap add` (persistent) and attached to, so both paths of
// the device opener run. Each TAP device is enslaved to a bridge in its
// namespace, and the two bridges are joined by a veth pair, so every
// frame goes IPCP → TAP fd → kernel (tapA) → bridge → veth → bridge →
// tapB → TAP fd → IPCP: a real kernel path, bridged on both sides.
func TestTapOping(t *testing.T) {
	nsA, nsB := testenv.NetNS(t), testenv.NetNS(t)
	vA, vB := testenv.Veth(t, nsA, nsB)
	tapA, tapB := testenv.UniqueName("ota"), testenv.UniqueName("otb")
	testenv.IP(t, "-n", nsB, "tuntap", "add", "dev", tapB, "mode", "tap")
	t.Cleanup(func() { exec.Command("ip", "-n", nsB, "tuntap", "del", "dev", tapB, "mode", "tap").Run() })
	dirA, _ := testenv.StartDaemon(t, nsA)
	dirB, _ := testenv.StartDaemon(t, nsB)
	testenv.MustRun(t, nsA, dirA, "irm", "ipcp", "bootstrap", "type", "tap", "name", "ta", "layer", "tap", "dev", tapA)
	testenv.MustRun(t, nsB, dirB, "irm", "ipcp", "bootstrap", "type", "tap", "name", "tb", "layer", "tap", "dev", tapB)
	for _, side := range []struct{ ns, tap, veth string }{{nsA, tapA, vA}, {nsB, tapB, vB}} {
		br := testenv.UniqueName("obr")
		testenv.IP(t, "-n", side.ns, "link", "add", br, "type", "bridge")
		testenv.IP(t, "-n", side.ns, "link", "set", side.tap, "master", br)
		testenv.IP(t, "-n", side.ns, "link", "set", side.veth, "master", br)
		testenv.IP(t, "-n", side.ns, "link", "set", br, "up")
	}
	// The IPCP brought its TAP device up.
	if out := testenv.InNS(t, nsA, "ip", "link", "show", tapA); !strings.Contains(out, "UP") {
		t.Fatalf("%s not up:\n%s", tapA, out)
	}
	testenv.MustRun(t, nsB, dirB, "irm", "name", "register", "oping", "layer", "tap")
	testenv.Start(t, nsB, dirB, "oping", "-l", "-n", "oping")
	waitListening(t, dirB, "oping")

	// Ping-pong (-f: one probe in flight): a raw flow promises nothing
	// when a back-to-back burst overflows the TAP and bridge queues,
	// but with nothing queued every probe must come back.
	out := testenv.MustRun(t, nsA, dirA, "oping", "-n", "oping", "-c", "1000", "-f", "-Q")
	t.Logf("oping:\n%s", out)
	m := lossRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no oping summary")
	}
	sent, _ := strconv.Atoi(m[1])
	received, _ := strconv.Atoi(m[2])
	if sent != 1000 || received != 1000 || m[3] != "0" {
		t.Fatalf("sent %d, received %d, loss %s%%", sent, received, m[3])
	}
	for _, side := range []struct{ ns, dir string }{{nsA, dirA}, {nsB, dirB}} {
		show := testenv.MustRun(t, side.ns, side.dir, "irm", "layer", "show", "tap")
		t.Logf("layer show in %s:\n%s", side.ns, show)
		if !strings.Contains(show, "carrier  up") || !strings.Contains(show, "flow MTU 1496") {
			t.Errorf("unexpected layer show")
		}
	}
	// The pre-existing device is still there after its IPCP let go
	// (the daemon stops at cleanup; check the persist flag instead).
	if out := testenv.InNS(t, nsB, "ip", "-d", "link", "show", tapB); !strings.Contains(out, "persist") {
		t.Errorf("%s lost its persist flag:\n%s", tapB, out)
	}
}

// TestTapDevice opens a TAP device directly: it is created and up, the
// station MAC differs from the kernel side's, frames the kernel sends
// (ARP here, IPv6 neighbour discovery unasked) arrive, and Close unblocks a reader
// blocked in ReadFrame and removes the device.
func TestTapDevice(t *testing.T) {
	ns := testenv.NetNS(t)
	name := testenv.UniqueName("otd")
	var dev *shim.Device
	var err error
	testenv.InNetNS(t, ns, func() { dev, err = tap.OpenTAP(hclog.NewNullLogger(), name, frame.DefaultEtherType) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Medium.Close() })
	out := testenv.InNS(t, ns, "ip", "link", "show", name)
	if !strings.Contains(out, "UP") || dev.MTU != 1500 || dev.Index == 0 {
		t.Fatalf("device %+v\n%s", dev, out)
	}
	if strings.Contains(out, dev.MAC.String()) || dev.MAC.IsMulticast() || dev.MAC[0]&2 == 0 {
		t.Fatalf("station MAC %s must be unicast, local and not the kernel's:\n%s", dev.MAC, out)
	}
	// Give the kernel something to send: an address on the device.
	testenv.IP(t, "-n", ns, "addr", "add", "198.51.100.1/24", "dev", name)
	testenv.InNetNS(t, ns, func() {
		// A datagram to a neighbour makes the kernel send ARP out of
		// the device.
		c, err := net.Dial("udp4", "198.51.100.2:9")
		if err != nil {
			t.Error(err)
			return
		}
		c.Write([]byte("x"))
		c.Close()
	})
	readDone := make(chan error, 1)
	got := make(chan uint16, 16)
	go func() {
		buf := make([]byte, 65536)
		for {
			n, err := dev.Medium.ReadFrame(buf)
			if err != nil {
				readDone <- err
				return
			}
			if et, ok := frame.EtherType(buf[:n]); ok {
				select {
				case got <- et:
				default:
				}
			}
		}
	}()
	select {
	case et := <-got:
		t.Logf("kernel sent EtherType 0x%04x through the TAP device", et)
	case <-time.After(5 * time.Second):
		t.Fatal("nothing read from the TAP device")
	}
	if err := dev.Medium.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-readDone:
		if !errors.Is(err, os.ErrClosed) {
			t.Logf("reader ended with %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not unblock the reader")
	}
	// The device was created by the opener, so it is gone.
	testenv.InNetNS(t, ns, func() {
		if _, err := net.InterfaceByName(name); err == nil {
			t.Errorf("%s still exists after close", name)
		}
	})
}

// TestTapBootstrapErrors: bad parameters fail clearly (no root needed).
func TestTapBootstrapErrors(t *testing.T) {
	h := testenv.StartHost(t)
	for i, c := range []struct {
		params map[string]string
		want   string
	}{
		{map[string]string{"ethertype": "0xA000"}, "missing parameter dev"},
		{map[string]string{"dev": "t0", "peer": "x"}, "unknown parameter peer"},
		{map[string]string{"dev": "averyveryverylongtapname"}, "longer than 15 bytes"},
	} {
		err := h.Call(ctrl.OpIPCPBootstrap, ctrl.IPCPBootstrap{Type: "tap", Name: "t" + strconv.Itoa(i), Layer: "tap", Params: c.params}, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: err %v, want %q", c.params, err, c.want)
		} else {
			t.Logf("%v: %v", c.params, err)
		}
	}
}
