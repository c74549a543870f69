package eth_test

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ouro-net/ouro/internal/testenv"
	"github.com/ouro-net/ouro/ipcpd/eth/frame"
	"github.com/ouro-net/ouro/ipcpd/shim/admit"
	"github.com/ouro-net/ouro/ipcpd/shim/wire"
	"github.com/ouro-net/ouro/lib/ctrl"
	"github.com/ouro-net/ouro/lib/namehash"
	"github.com/ouro-net/ouro/lib/qos"
)

// packetSocketIn opens an AF_PACKET socket on dev inside network
// namespace ns, for frames of the default EtherType: the socket stays in
// the namespace it was made in, the calling thread goes back.
func packetSocketIn(t *testing.T, ns, dev string) int {
	t.Helper()
	runtime.LockOSThread()
	self, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer self.Close()
	target, err := os.Open("/var/run/netns/" + ns)
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("setns %s: %v", ns, err)
	}
	fd, serr := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	ifi, ierr := net.InterfaceByName(dev)
	if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
		// This thread is in the wrong namespace: let it die with the
		// goroutine rather than serve others.
		t.Fatalf("setns back: %v", err)
	}
	runtime.UnlockOSThread()
	if serr != nil || ierr != nil {
		t.Fatalf("packet socket on %s in %s: %v %v", dev, ns, serr, ierr)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(frame.DefaultEtherType), Ifindex: ifi.Index}); err != nil {
		unix.Close(fd)
		t.Fatalf("bind: %v", err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// TestEthAllocFlood: from a forged MAC on A's side of the veth, a
// flood of allocation requests for B's oping server, never confirmed.
// B's eth-dix IPCP (a process) keeps at most its per-source pending cap
// of flows from that MAC, ends them when they stay unconfirmed, counts
// the refusals and expiries in `irm layer show`, and A (another MAC)
// still allocates and gets its pings answered.
func TestEthAllocFlood(t *testing.T) {
	s := setupSegment(t)
	macB, err := net.ParseMAC(strings.TrimSpace(testenv.InNS(t, s.nsB, "cat", "/sys/class/net/"+s.b+"/address")))
	if err != nil {
		t.Fatal(err)
	}
	dst, _ := frame.MACFrom(macB)
	src := frame.MAC{0x02, 0xf1, 0x00, 0xd0, 0x00, 0x01}
	fd := packetSocketIn(t, s.nsA, s.a)
	var stop atomic.Bool
	done := make(chan int)
	go func() {
		sent := 0
		for eid := uint16(1); !stop.Load(); eid++ {
			if eid == 0 {
				eid = 1
			}
			m := wire.Msg{Type: wire.AllocReq, Src: uint32(eid), Hash: namehash.Of("oping"), MTU: 1496, QoS: qos.Raw()}
			p := m.Append(nil)
			if _, err := unix.Write(fd, frame.Append(nil, frame.Header{Dst: dst, Src: src, EtherType: frame.DefaultEtherType}, p)); err == nil {
				sent++
			}
			if eid%64 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
		done <- sent
	}()
	defer func() {
		if !stop.Swap(true) {
			<-done
		}
	}()
	// show is B's `irm layer show eth --json`: its status as data, and
	// the JSON for messages.
	show := func() (*ctrl.ShimStatus, string) {
		out := testenv.MustRun(t, s.nsB, s.dirB, "irm", "layer", "show", "eth", "--json")
		var info ctrl.LayerInfo
		if err := json.Unmarshal([]byte(out), &info); err != nil || info.Status == nil || info.Status.Shim == nil {
			t.Fatalf("irm layer show eth --json: %v\n%s", err, out)
		}
		return info.Status.Shim, out
	}
	deadline := time.Now().Add(20 * time.Second)
	st, text := show()
	for ; st.Counters["refused-peer-pending-full"] == 0 || st.Counters["expired-unconfirmed"] == 0; st, text = show() {
		if time.Now().After(deadline) {
			t.Fatalf("no refusal or expiry under the flood:\n%s", text)
		}
		time.Sleep(100 * time.Millisecond)
	}
	out := testenv.MustRun(t, s.nsA, s.dirA, "oping", "-n", "oping", "-c", "200", "-i", "1ms", "-Q")
	sent, received, loss := pingLoss(t, out)
	t.Logf("honest ping during the flood: %d sent, %d received, %.1f%% loss", sent, received, loss)
	if received == 0 {
		t.Fatalf("no reply to the honest ping during the flood:\n%s", out)
	}
	st, text = show()
	// The flooder holds at most its pending share; the honest ping flow
	// may still be there.
	if n := st.Limits.Flows; n > admit.MaxPendingPerPeer+1 {
		t.Fatalf("%d incoming flows under an unconfirmed flood (cap %d per source):\n%s", n, admit.MaxPendingPerPeer, text)
	}
	stop.Store(true)
	t.Logf("flood: %d requests; B:\n%s", <-done, text)
}
