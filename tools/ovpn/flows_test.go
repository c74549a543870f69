package main

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ouro-net/ouro/flow"
	"github.com/ouro-net/ouro/internal/testenv"
	"github.com/ouro-net/ouro/internal/topo"
	"github.com/ouro-net/ouro/lib/qos"
)

// rawFlow allocates a raw flow to the ovpn server from A's IRMd, as a
// hand-written client would.
func (tu *tunnel) rawFlow(t *testing.T) *flow.Flow {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f, err := flow.Alloc(ctx, "ovpn", qos.Raw(), flow.WithRunDir(tu.dir["a"]))
	if err != nil {
		t.Fatalf("allocate a flow to ovpn: %v", err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// answer sends msg (if any) on f until a control message other than a
// keepalive comes back.
func answer(t *testing.T, f *flow.Flow, msg []byte) control {
	t.Helper()
	buf := make([]byte, maxMTU)
	for try := 0; try < 20; try++ {
		if msg != nil {
			if _, err := f.Write(msg); err != nil {
				t.Fatalf("write: %v", err)
			}
		}
		f.SetReadDeadline(time.Now().Add(250 * time.Millisecond))
		for {
			n, err := f.Read(buf)
			if err != nil {
				break
			}
			if m, err := decodeControl(buf[:n]); err == nil && m.Type != msgKeepalive {
				return m
			}
		}
	}
	t.Fatalf("no answer from the server to %x", msg)
	return control{}
}

func helloMsg(p string) []byte {
	return control{Type: msgHello, Session: rand.Uint64(), Prefix: netip.MustParsePrefix(p)}.encode()
}

// udp4 builds an IPv4 UDP packet.
func udp4(src, dst netip.Addr, payload []byte) []byte {
	b := make([]byte, 28, 28+len(payload))
	b[0], b[8], b[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(b[2:], uint16(28+len(payload)))
	copy(b[12:16], src.AsSlice())
	copy(b[16:20], dst.AsSlice())
	binary.BigEndian.PutUint16(b[10:], inetChecksum(b[:20]))
	binary.BigEndian.PutUint16(b[20:], 40000)
	binary.BigEndian.PutUint16(b[22:], 9)
	binary.BigEndian.PutUint16(b[24:], uint16(8+len(payload)))
	return append(b, payload...)
}

// abuse: hand-written clients send garbage, claim addresses that are
// not theirs, spoof, flood and exceed the client cap; the server refuses
// each with a reason or counts the drop, and the real tunnel still works.
func (tu *tunnel) abuse(t *testing.T) {
	// Garbage, data before any hello, then a hello of an unknown version
	// (a garbage packet that looks like a control message of another
	// version may be refused first: either way, a version refusal).
	f := tu.rawFlow(t)
	for i := range 200 {
		junk := make([]byte, 1+i%40)
		for j := range junk {
			junk[j] = byte(rand.Uint32())
		}
		junk[0] = byte(i % 2 * 0x45) // half control-marked, half IP-looking
		f.Write(junk)
	}
	if m := answer(t, f, []byte{0, 9, msgHello, 1, 2, 3}); m.Type != msgRefuse || m.Code != refuseVersion {
		t.Errorf("hello of version 9: %+v, want a version refusal", m)
	} else {
		t.Logf("garbage refused: %s", m.Reason)
	}
	f.Close()

	for _, c := range []struct {
		prefix string
		code   byte
	}{{"10.9.0.2/24", refuseConflict}, {"10.8.0.5/24", refuseAddress}, {"10.9.0.1/24", refuseAddress},
		{"10.9.0.255/24", refuseAddress}} {
		f := tu.rawFlow(t)
		if m := answer(t, f, helloMsg(c.prefix)); m.Type != msgRefuse || m.Code != c.code {
			t.Errorf("hello claiming %s: %+v, want refusal code %d", c.prefix, m, c.code)
		} else {
			t.Logf("%s refused: %s", c.prefix, m.Reason)
		}
		f.Close()
	}

	// A welcomed client that spoofs and floods.
	f1 := tu.rawFlow(t)
	if m := answer(t, f1, helloMsg("10.9.0.3/24")); m.Type != msgWelcome || m.Prefix.Addr() != serverIP {
		t.Fatalf("hello claiming 10.9.0.3: %+v, want a welcome from 10.9.0.1", m)
	}
	spoofed := udp4(netip.MustParseAddr("10.9.0.77"), serverIP, []byte("spoofed"))
	for range 10 {
		f1.Write(spoofed)
	}
	flood := udp4(netip.MustParseAddr("10.9.0.3"), serverIP, make([]byte, 1000))
	for range 20000 {
		if _, err := f1.Write(flood); err != nil {
			t.Fatalf("flood: %v", err)
		}
	}

	// The cap is 3 flows: the real client, f1 and f2 (no hello yet);
	// the fourth is refused.
	tu.rawFlow(t)
	time.Sleep(200 * time.Millisecond) // let the server take f2 before f3
	f3 := tu.rawFlow(t)
	if m := answer(t, f3, helloMsg("10.9.0.4/24")); m.Type != msgRefuse || m.Code != refuseFull {
		t.Errorf("fourth flow: %+v, want a refusal: server full", m)
	} else {
		t.Logf("fourth flow refused: %s", m.Reason)
	}

	// Every abuse is counted at the server.
	time.Sleep(300 * time.Millisecond)
	st := waitEvent(t, tu.server, "status", 0, time.Second).Stats
	t.Logf("server counters after the abuse: %v", st)
	for _, reason := range []string{dropSpoofed, "refused-conflict", "refused-full", dropEarly} {
		if st == nil || st.Drops[reason] == 0 {
			t.Errorf("server counted no %s drop: %+v", reason, st)
		}
	}
	if st != nil && st.Drops[dropSpoofed] < 10 {
		t.Errorf("spoofed drops %d, want at least the 10 sent", st.Drops[dropSpoofed])
	}
	if err := icmpEcho(t, tu.ns["a"], serverIP, 10); err != nil {
		t.Errorf("ping through the tunnel after the abuse: %v", err)
	}
}

// tcpPair connects a TCP client in A to a server in B through the
// tunnel; the server side is handed to serve.
func (tu *tunnel) tcpPair(t *testing.T, serve func(net.Conn)) net.Conn {
	t.Helper()
	var ln net.Listener
	var err error
	testenv.InNetNS(t, tu.ns["b"], func() { ln, err = net.Listen("tcp4", serverIP.String()+":0") })
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var srv net.Conn
	t.Cleanup(func() {
		ln.Close()
		// The far end's FIN may never arrive through a broken tunnel:
		// close the server's end too.
		mu.Lock()
		if srv != nil {
			srv.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := ln.Accept()
		if err != nil {
			return
		}
		mu.Lock()
		srv = c
		mu.Unlock()
		defer c.Close()
		serve(c)
	}()
	var c net.Conn
	testenv.InNetNS(t, tu.ns["a"], func() { c, err = net.DialTimeout("tcp4", ln.Addr().String(), 10*time.Second) })
	if err != nil {
		t.Fatalf("TCP connect through the tunnel: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// waitBothPaths waits until A routes to B over both paths again.
func (tu *tunnel) waitBothPaths(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if u, err := tu.status("a"); err == nil && topo.RouteNextHops(u, "b") >= 2 {
			return
		}
	}
	t.Fatal("A's route to B did not return to both paths")
}

// requests: a plain TCP connection through ovpn, one 64-byte request
// every millisecond echoed by the far end, survives the carrier loss of
// the path carrying it with every byte intact.
func (tu *tunnel) requests(t *testing.T) {
	c := tu.tcpPair(t, func(c net.Conn) { io.Copy(c, c) })
	var sent atomic.Uint64
	stop := make(chan struct{})
	werr := make(chan error, 1)
	go func() {
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		req := make([]byte, 64)
		for seq := uint64(0); ; seq++ {
			select {
			case <-stop:
				werr <- nil
				return
			case <-tick.C:
			}
			binary.BigEndian.PutUint64(req, seq)
			for i := 8; i < 64; i++ {
				req[i] = byte(seq) + byte(i)
			}
			if _, err := c.Write(req); err != nil {
				werr <- err
				return
			}
			sent.Add(1)
		}
	}()
	var got uint64
	var gap time.Duration
	rerr := make(chan error, 1)
	var mu sync.Mutex
	go func() {
		resp := make([]byte, 64)
		last := time.Now()
		for {
			if _, err := io.ReadFull(c, resp); err != nil {
				rerr <- err
				return
			}
			now := time.Now()
			mu.Lock()
			if binary.BigEndian.Uint64(resp) != got {
				mu.Unlock()
				rerr <- errors.New("reply out of order")
				return
			}
			for i := 8; i < 64; i++ {
				if resp[i] != byte(got)+byte(i) {
					mu.Unlock()
					rerr <- errors.New("reply corrupted")
					return
				}
			}
			got++
			if d := now.Sub(last); d > gap {
				gap = d
			}
			last = now
			mu.Unlock()
		}
	}()
	time.Sleep(300 * time.Millisecond)
	lower := tu.busyLower(t, 300*time.Millisecond)
	mu.Lock()
	gap = 0
	mu.Unlock()
	restore := tu.cut(t, lower)
	time.Sleep(1500 * time.Millisecond)
	close(stop)
	if err := <-werr; err != nil {
		t.Fatalf("request stream failed across the cut: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		done, g := got == sent.Load(), gap
		mu.Unlock()
		if done {
			t.Logf("%d requests answered intact across the loss of %s; longest gap around the cut %v (a figure, not asserted: see go run ./bench -ovpn)",
				got, lower, g.Round(100*time.Microsecond))
			break
		}
		select {
		case err := <-rerr:
			t.Fatalf("replies failed after %d of %d: %v", got, sent.Load(), err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d requests answered", got, sent.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
	restore()
	tu.waitBothPaths(t)
}

// bulk: a TCP transfer of size bytes through ovpn completes intact
// across the carrier loss of the path carrying it.
func (tu *tunnel) bulk(t *testing.T, size int64) {
	var rcvd atomic.Int64
	type result struct {
		n   int64
		sum [32]byte
		err error
	}
	res := make(chan result, 1)
	c := tu.tcpPair(t, func(c net.Conn) {
		h := sha256.New()
		n, err := io.Copy(io.MultiWriter(h, counter{&rcvd}), c)
		var r result
		r.n, r.err = n, err
		copy(r.sum[:], h.Sum(nil))
		res <- r
	})
	h := sha256.New()
	src := io.TeeReader(io.LimitReader(rand.NewChaCha8([32]byte{1, 2, 3}), size), h)
	start := time.Now()
	werr := make(chan error, 1)
	go func() {
		_, err := io.Copy(c, src)
		if err == nil {
			err = c.(*net.TCPConn).CloseWrite()
		}
		werr <- err
	}()
	for rcvd.Load() < size/8 {
		select {
		case err := <-werr:
			if err != nil {
				t.Fatalf("send: %v", err)
			}
		case <-time.After(5 * time.Millisecond):
		}
		if time.Since(start) > 60*time.Second {
			t.Fatalf("only %d bytes in 60 s", rcvd.Load())
		}
	}
	lower := tu.busyLower(t, 50*time.Millisecond)
	restore := tu.cut(t, lower)
	cutAt := rcvd.Load()
	if cutAt >= size {
		t.Fatalf("the transfer was over before the cut: make it longer")
	}
	var r result
	select {
	case r = <-res:
	case <-time.After(120 * time.Second):
		t.Fatalf("transfer stalled at %d of %d bytes", rcvd.Load(), size)
	}
	if err := <-werr; err != nil {
		t.Fatalf("send: %v", err)
	}
	el := time.Since(start)
	if r.err != nil || r.n != size || r.sum != [32]byte(h.Sum(nil)) {
		t.Fatalf("received %d of %d bytes (err %v), checksum match %v", r.n, size, r.err, r.sum == [32]byte(h.Sum(nil)))
	}
	t.Logf("%d MiB intact across the loss of %s (cut at %d MiB) in %v: %.0f Mbit/s", size>>20, lower, cutAt>>20,
		el.Round(time.Millisecond), float64(size)*8/el.Seconds()/1e6)
	restore()
	tu.waitBothPaths(t)
}

type counter struct{ n *atomic.Int64 }

func (c counter) Write(b []byte) (int, error) {
	c.n.Add(int64(len(b)))
	return len(b), nil
}

// restart: the server goes away and comes back; the client keeps its
// TUN device, reallocates with backoff, and the tunnel works again.
func (tu *tunnel) restart(t *testing.T) {
	ups := 0
	for _, e := range events(tu.client) {
		if e.Event == "up" {
			ups++
		}
	}
	tu.server.Stop()
	down := waitEvent(t, tu.client, "down", 0, 10*time.Second)
	t.Logf("client saw the flow go down: %s", down.Error)
	time.Sleep(500 * time.Millisecond) // a few failed reallocations
	tu.server = tu.ovpn(t, "b", "serving", "-l", "-n", "ovpn", "--ip", "10.9.0.1/24", "--dev", tu.serverDev,
		"--max-clients", "3", "--status", "100ms")
	waitEvent(t, tu.client, "up", ups, 30*time.Second)
	if retry := waitEvent(t, tu.client, "retry", 0, time.Second); retry.Retry == "" {
		t.Errorf("retry event without a backoff: %+v", retry)
	}
	if err := icmpEcho(t, tu.ns["a"], serverIP, 10); err != nil {
		t.Errorf("ping after the server came back: %v", err)
	}
}

// partition: both paths die for longer than the client's --dead (2 s);
// the client gives its flow up, keeps its TUN device, and reallocates
// once the paths return, so a TCP connection opened before the
// partition carries on after it.
func (tu *tunnel) partition(t *testing.T) {
	c := tu.tcpPair(t, func(c net.Conn) { io.Copy(c, c) })
	echo := func(msg string) error {
		c.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err := c.Write([]byte(msg)); err != nil {
			return err
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(c, got); err != nil {
			return err
		}
		if string(got) != msg {
			return errors.New("echo corrupted")
		}
		return nil
	}
	if err := echo("before the partition"); err != nil {
		t.Fatal(err)
	}
	downs := 0
	for _, e := range events(tu.client) {
		if e.Event == "down" {
			downs++
		}
	}
	var restores []func()
	for _, l := range pairLowers {
		restores = append(restores, tu.cut(t, l))
	}
	down := waitEvent(t, tu.client, "down", downs, 10*time.Second)
	t.Logf("partitioned; the client gave its flow up: %s", down.Error)
	time.Sleep(time.Second) // reallocations fail meanwhile
	for _, r := range restores {
		r()
	}
	tu.waitBothPaths(t)
	start := time.Now()
	if err := echo("after the partition"); err != nil {
		t.Fatalf("the TCP connection did not survive the healed partition: %v\n%s", err, tu.client.Out.String())
	}
	t.Logf("the TCP connection carried on %v after the paths returned", time.Since(start).Round(time.Millisecond))
	if !strings.Contains(tu.client.Out.String(), `"event":"retry"`) {
		t.Errorf("no reallocation was retried during the partition:\n%s", tu.client.Out.String())
	}
}
