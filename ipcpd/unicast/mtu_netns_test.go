package unicast_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ouro-net/ouro/enroll"
	"github.com/ouro-net/ouro/flow"
	"github.com/ouro-net/ouro/flow/ping"
	"github.com/ouro-net/ouro/internal/testenv"
	"github.com/ouro-net/ouro/layer"
	"github.com/ouro-net/ouro/lib/ctrl"
	"github.com/ouro-net/ouro/lib/qos"
)

// TestLargeLayerOverEthernetMTUNetns: management messages that grow
// with the layer fit the lower flows' MTU. Three hosts share one
// network namespace whose loopback is set to an Ethernet MTU (1500), so
// the udp4 lower flows carry at most 1472-byte frames. A (bootstrap)
// holds 200 names, B enrolls and adds 100 more: B's enrollment
// response (A's entry alone is about 5 KiB), A's directory entry sent
// to B on the new adjacency and B's entry flooded back, and C's
// enrollment response (the whole directory, some 8 KiB) are each many
// frames. A fake neighbour then announces 300 more members (one name
// each) to A, so the member list in C's enrollment response (addresses
// in use, directory entries) alone is larger than a frame. C then knows
// every name and pings a name at B through A. Before the fix, B's
// enrollment failed ("no answer: EOF").
func TestLargeLayerOverEthernetMTUNetns(t *testing.T) {
	testenv.RequireRoot(t)
	ns := testenv.NetNS(t)
	testenv.IP(t, "-n", ns, "link", "set", "lo", "mtu", "1500")
	hosts := []string{"a", "b", "c"}
	ip := map[string]string{"a": "127.0.0.1", "b": "127.0.0.2", "c": "127.0.0.3"}
	dir := map[string]string{}
	for _, h := range hosts {
		dir[h], _ = testenv.StartDaemon(t, ns)
	}
	call := func(h, op string, req any) {
		t.Helper()
		if err := testenv.CallDir(dir[h], op, req, nil); err != nil {
			t.Fatalf("%s at %s: %v", op, h, err)
		}
	}
	for _, h := range hosts {
		var peers []string
		for _, o := range hosts {
			if o != h {
				peers = append(peers, ip[o]+":3435")
			}
		}
		call(h, ctrl.OpIPCPBootstrap, ctrl.IPCPBootstrap{Type: "udp4", Name: h + ".udp", Layer: "udp",
			Params: map[string]string{"ip": ip[h], "port": "3435", "peer": strings.Join(peers, ",")}})
	}
	register := func(h, layer string, names ...string) {
		t.Helper()
		for _, n := range names {
			call(h, ctrl.OpNameRegister, ctrl.NameRegister{Name: n, Layers: []string{layer}})
		}
	}
	many := func(prefix string, n int) []string {
		var out []string
		for i := range n {
			out = append(out, fmt.Sprintf("%s-service-name-%d", prefix, i))
		}
		return out
	}
	aNames, bNames := many("a", 200), many("b", 100)

	call("a", ctrl.OpIPCPBootstrap, ctrl.IPCPBootstrap{Type: "unicast", Name: "a", Layer: "net", Autobind: true})
	register("a", "udp", "a", "net")
	register("a", "net", aNames...)
	join := func(h string) {
		t.Helper()
		call(h, ctrl.OpIPCPCreate, ctrl.IPCPCreate{Type: "unicast", Name: h})
		call(h, ctrl.OpIPCPEnroll, ctrl.IPCPEnroll{Name: h, Layer: "net", Autobind: true})
		register(h, "udp", h)
		call(h, ctrl.OpIPCPConnect, ctrl.IPCPConnect{Name: h, Dst: "a"})
	}
	join("b")
	register("b", "net", bNames...)
	register("b", "net", "pingsrv")
	waitNames(t, dir["a"], bNames[0], bNames[99], "pingsrv")
	ghosts := announceMembers(t, dir["b"], 300)
	waitNames(t, dir["a"], ghosts...)
	join("c")
	waitNames(t, dir["c"], append(append(append([]string{"pingsrv"}, aNames...), bNames...), ghosts...)...)
	if _, u := netStatus(t, dir["c"], "net"); len(u.Directory) < 303 {
		t.Fatalf("c's directory has %d members, want at least 303", len(u.Directory))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := flow.Listen("pingsrv", flow.WithRunDir(dir["b"]))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go ping.Serve(ctx, l, nil)
	f, err := flow.Alloc(ctx, "pingsrv", qos.Raw(), flow.WithRunDir(dir["c"]))
	if err != nil {
		info, _ := layerInfo(dir["c"], "net")
		t.Fatalf("allocate from c to b: %v\n%s", err, info.Render())
	}
	defer f.Close()
	st, err := ping.RunOn(ctx, f, ping.Config{Name: "pingsrv", Count: 20, Size: 1000})
	if err != nil || st.Received != 20 {
		t.Fatalf("ping c to b over 1500-MTU lower flows: %v %+v", err, st)
	}
	t.Logf("c to b: %s", strings.TrimSpace(st.Summary()))
}

// announceMembers opens an adjacency to A from the test process (through
// the IRMd of dir, over layer udp) as a fake member and sends directory
// updates announcing n members of one name each, in frames that fit the
// lower flow; it returns the names.
func announceMembers(t *testing.T, dir string, n int) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	f, err := flow.Alloc(ctx, "a", qos.Raw(), flow.WithRunDir(dir), flow.WithLayer("udp"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	var reply enroll.Hello
	if err := enroll.Exchange(ctx, f, 1, enroll.Hello{V: enroll.Version, Addr: 0xfeed, IPCP: "announcer", Layer: "net"}, &reply); err != nil || reply.Err != "" {
		t.Fatalf("hello: %v %+v", err, reply)
	}
	var names []string
	var entries []layer.DirEntry
	for i := range n {
		names = append(names, fmt.Sprintf("ghost-name-%d", i))
		entries = append(entries, layer.DirEntry{Origin: uint64(0x10000 + i), IPCP: fmt.Sprintf("ghost-%d", i), Seq: 1, Names: []string{names[i]}})
	}
	updates, err := layer.SplitDir(entries, f.MTU()-5)
	if err != nil {
		t.Fatal(err)
	}
	for i, u := range updates {
		// Directory frame: kind 3, a 4-byte sequence number, the update.
		frame := append([]byte{3, 0, 0, byte(i >> 8), byte(i + 1)}, u...)
		if _, err := f.Write(frame); err != nil {
			t.Fatalf("directory update %d of %d (%d bytes, MTU %d): %v", i+1, len(updates), len(frame), f.MTU(), err)
		}
	}
	t.Logf("announced %d members in %d frames of at most %d bytes", n, len(updates), f.MTU())
	return names
}

// waitNames waits up to 20 s until the directory of the IRMd at dir
// holds every name.
func waitNames(t *testing.T, dir string, names ...string) {
	t.Helper()
	var missing []string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		_, u := netStatus(t, dir, "net")
		missing = missing[:0]
		for _, n := range names {
			if !knowsName(u, n) {
				missing = append(missing, n)
			}
		}
		if len(missing) == 0 {
			return
		}
	}
	info, _ := layerInfo(dir, "net")
	t.Fatalf("%d of %d names never reached the directory (first %s):\n%s", len(missing), len(names), missing[0], info.Render())
}

// TestEnrollmentRepeatsBounded: a joiner repeating its request many
// times a second gets the response again only a bounded number of times
// (enrollResends), however long it keeps asking: a small request cannot
// make a member send its whole directory without end.
func TestEnrollmentRepeatsBounded(t *testing.T) {
	const resends = 8 // enrollResends
	tp := pair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	f, err := flow.Alloc(ctx, "net", qos.Raw(), tp.Hosts["b"].Opt(), flow.WithLayer("udp1"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	req, _ := enroll.Encode(enroll.Request{V: enroll.Version, IPCP: "repeater", Layer: "net"})
	req = append([]byte{4}, req...)
	got := make(chan int)
	go func() {
		n := 0
		buf := make([]byte, 1<<16)
		f.SetReadDeadline(time.Now().Add(2500 * time.Millisecond))
		for {
			m, err := f.Read(buf)
			if err != nil {
				got <- n
				return
			}
			if m > 0 && buf[0] == 4 {
				n++
			}
		}
	}()
	for range 150 { // 1.5 s of requests, one every 10 ms: 15 answers without the bound
		if _, err := f.Write(req); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	n := <-got
	if n < 2 || n > 1+resends {
		t.Fatalf("%d responses to 150 requests, want between 2 and %d", n, 1+resends)
	}
	t.Logf("%d responses to 150 requests", n)
}
