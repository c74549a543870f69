package main

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/ouro-net/ouro/flow/ping"
)

// TestPingPairAlternates runs the paired round trips over two UDP
// echoes: both conns get their probes answered, one at a time and in
// turn, so both collect (almost) as many round trips; a conn nobody
// answers loses its probes and the other still measures.
func TestPingPairAlternates(t *testing.T) {
	echo := func() string {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		go ping.Echo(&peerConn{UDPConn: c}) // ends when the socket closes
		return c.LocalAddr().String()
	}
	dial := func(addr string) net.Conn {
		c, err := dialUDP(addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	a, b := dial(echo()), dial(echo())
	rtts, err := pingPair(context.Background(), [2]net.Conn{a, b}, 64, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if n0, n1 := len(rtts[0]), len(rtts[1]); n0 < 10 || n1 < n0-1 || n1 > n0+1 {
		t.Fatalf("round trips %d and %d: want many, in turn", n0, n1)
	}
	// A silent far end: its probes are lost, the other's are answered.
	silent, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	rtts, err = pingPair(context.Background(), [2]net.Conn{a, dial(silent.LocalAddr().String())}, 64, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if len(rtts[0]) == 0 || len(rtts[1]) != 0 {
		t.Fatalf("with a silent end: round trips %d and %d", len(rtts[0]), len(rtts[1]))
	}
}
