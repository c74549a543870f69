package irmd_test

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ouro-net/ouro/internal/testenv"
	"github.com/ouro-net/ouro/irmd"
	"github.com/ouro-net/ouro/lib/ctrl"
	"github.com/ouro-net/ouro/lib/rundir"
)

// fdCount counts the open descriptors of pid.
func fdCount(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// rssKB reads the resident set of pid in KiB.
func rssKB(t *testing.T, pid int) int {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			return kb
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// waitFDs waits until pid has at most want descriptors open and returns
// the last count.
func waitFDs(t *testing.T, pid, want int) int {
	t.Helper()
	n := fdCount(t, pid)
	for deadline := time.Now().Add(10 * time.Second); n > want && time.Now().Before(deadline); n = fdCount(t, pid) {
		time.Sleep(20 * time.Millisecond)
	}
	return n
}

// TestCallsLeaveNoDescriptors makes 1000 one-request connections to an
// irm daemon process: its descriptor count must come back to where it
// started (within 5). The 10,000-call figure with RSS is
// `go run ./bench -irmcalls`.
func TestCallsLeaveNoDescriptors(t *testing.T) {
	dir, p := testenv.StartDaemon(t, "")
	pid := p.Cmd.Process.Pid
	start := fdCount(t, pid)
	for i := range 1000 {
		if err := testenv.CallDir(dir, ctrl.OpIPCPList, nil, &ctrl.IPCPList{}); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if n := waitFDs(t, pid, start+5); n > start+5 {
		t.Fatalf("after 1000 calls the IRMd holds %d descriptors, started with %d", n, start)
	}
}

// TestClientThatNeverReads floods requests on one connection without
// reading a reply: the IRMd must push back, then disconnect it, with
// its memory and descriptors bounded, while another client is served.
func TestClientThatNeverReads(t *testing.T) {
	dir, p := testenv.StartDaemon(t, "")
	pid := p.Cmd.Process.Pid
	startFDs, startRSS := fdCount(t, pid), rssKB(t, pid)
	c, err := net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: rundir.Socket(dir), Net: "unixpacket"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req, _ := ctrl.Encode(&ctrl.Msg{V: ctrl.Version, Kind: ctrl.KindRequest, ID: 1, Op: ctrl.OpNameList})
	sent, served := 0, false
	deadline := time.Now().Add(30 * time.Second)
	for {
		c.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
		if _, err := c.Write(req); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			break // disconnected
		} else if err == nil {
			sent++
		}
		if !served && sent > 100 {
			// The flood is on: an honest client still gets answers.
			if err := testenv.CallDir(dir, ctrl.OpIPCPList, nil, &ctrl.IPCPList{}); err != nil {
				t.Fatalf("honest call during the flood: %v", err)
			}
			served = true
		}
		if time.Now().After(deadline) {
			t.Fatalf("a client that never reads was not disconnected after %d requests", sent)
		}
	}
	if !served {
		t.Fatal("the honest call was not tried during the flood")
	}
	rss := rssKB(t, pid)
	t.Logf("disconnected after %d requests; IRMd RSS %d -> %d KiB", sent, startRSS, rss)
	if rss > startRSS+64<<10 {
		t.Fatalf("IRMd RSS grew from %d to %d KiB", startRSS, rss)
	}
	if n := waitFDs(t, pid, startFDs+5); n > startFDs+5 {
		t.Fatalf("IRMd holds %d descriptors after the disconnect, started with %d", n, startFDs)
	}
	// The log travels through a pipe: it may trail the disconnect.
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(p.Out.String(), "does not read its replies"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("disconnect not logged:\n%s", p.Out.String())
		}
	}
}

// TestConnectionCap fills the IRMd's connection cap: one more is closed
// at once and counted; when one leaves, calls are served again.
func TestConnectionCap(t *testing.T) {
	dir := testenv.ShortTempDir(t)
	d, err := irmd.Start(irmd.Config{RunDir: dir, Types: testenv.Types(), Exe: os.Args[0], MaxClients: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	dial := func() *net.UnixConn {
		c, err := net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: rundir.Socket(dir), Net: "unixpacket"})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	var held []*net.UnixConn
	for range 4 {
		held = append(held, dial())
	}
	for deadline := time.Now().Add(5 * time.Second); d.Clients() < 4; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d clients registered, want 4", d.Clients())
		}
	}
	extra := dial()
	defer extra.Close()
	extra.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := extra.Read(make([]byte, 16)); n != 0 || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("connection beyond the cap: read %d, %v; want it closed", n, err)
	}
	if d.RefusedConns() != 1 {
		t.Fatalf("refused connections = %d, want 1", d.RefusedConns())
	}
	held[0].Close()
	for deadline := time.Now().Add(5 * time.Second); d.Clients() > 3; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("a closed client stays registered")
		}
	}
	if err := testenv.CallDir(dir, ctrl.OpIPCPList, nil, &ctrl.IPCPList{}); err != nil {
		t.Fatalf("call after a slot came free: %v", err)
	}
	for _, c := range held[1:] {
		c.Close()
	}
}

// TestBigListSplit lists more names than one control record holds: the
// reply arrives whole, split over several records.
func TestBigListSplit(t *testing.T) {
	h := testenv.StartHost(t)
	const n = 1000
	pad := strings.Repeat("n", 100)
	for i := range n {
		if err := h.Call(ctrl.OpNameCreate, ctrl.NameCreate{Name: fmt.Sprintf("%s%04d", pad, i)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	var nl ctrl.NameList
	if err := h.Call(ctrl.OpNameList, nil, &nl); err != nil {
		t.Fatalf("name list of %d long names: %v", n, err)
	}
	if len(nl.Names) != n {
		t.Fatalf("listed %d names, want %d", len(nl.Names), n)
	}
	if b, _ := ctrl.Marshal(nl); len(b) <= ctrl.MaxMsgSize {
		t.Fatalf("the list is %d bytes: not over one record, the test proves nothing", len(b))
	}
}
