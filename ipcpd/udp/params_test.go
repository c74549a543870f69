package udp

import (
	"net/netip"
	"strings"
	"testing"
)

func TestParams(t *testing.T) {
	c, err := parseParams("udp4", false, map[string]string{"ip": "127.0.0.1", "peer": "127.0.0.2:3436, 127.0.0.3,127.0.0.2:3436"})
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.AddrPort{netip.MustParseAddrPort("127.0.0.2:3436"), netip.MustParseAddrPort("127.0.0.3:3435")}
	if c.bind != netip.MustParseAddrPort("127.0.0.1:3435") || len(c.peers) != 2 || c.peers[0] != want[0] || c.peers[1] != want[1] {
		t.Fatalf("got %v %v", c.bind, c.peers)
	}
	c, err = parseParams("udp6", true, map[string]string{"ip": "::1", "port": "4000", "peer": "[::1]:3436,::1,[::1]"})
	if err != nil {
		t.Fatal(err)
	}
	if c.bind != netip.MustParseAddrPort("[::1]:4000") || len(c.peers) != 2 || c.peers[1].Port() != DefaultPort {
		t.Fatalf("got %v %v", c.bind, c.peers)
	}

	bad := []struct {
		typ    string
		params map[string]string
		want   string
	}{
		{"udp4", map[string]string{}, "missing parameter ip"},
		{"udp4", map[string]string{"ip": "127.0.0.1", "colour": "red"}, `unknown parameter "colour"`},
		{"udp4", map[string]string{"ip": "localhost"}, "not an IP address"},
		{"udp4", map[string]string{"ip": "::1"}, "not an IPv4 address"},
		{"udp6", map[string]string{"ip": "127.0.0.1"}, "not an IPv6 address"},
		{"udp6", map[string]string{"ip": "::ffff:127.0.0.1"}, "not an IPv6 address"},
		{"udp4", map[string]string{"ip": "0.0.0.0"}, "unicast address"},
		{"udp4", map[string]string{"ip": "127.0.0.1", "port": "70000"}, "port"},
		{"udp4", map[string]string{"ip": "127.0.0.1", "peer": "host:1"}, "want ADDR or ADDR:PORT"},
		{"udp4", map[string]string{"ip": "127.0.0.1", "peer": "127.0.0.2:0"}, "port 0"},
		{"udp4", map[string]string{"ip": "127.0.0.1", "peer": "[::1]:5"}, "not an IPv4 address"},
	}
	for _, b := range bad {
		_, err := parseParams(b.typ, b.typ == "udp6", b.params)
		if err == nil || !strings.Contains(err.Error(), b.want) || !strings.HasPrefix(err.Error(), b.typ+" IPCP") {
			t.Errorf("%s %v: got %v, want %q", b.typ, b.params, err, b.want)
		}
	}
}

func TestMTU(t *testing.T) {
	if got := payloadMTU(1500, false); got != 1468 {
		t.Errorf("ethernet v4: %d", got)
	}
	if got := payloadMTU(1500, true); got != 1448 {
		t.Errorf("ethernet v6: %d", got)
	}
	if got := payloadMTU(65536, false); got != MaxMTU {
		t.Errorf("loopback: %d", got)
	}
	if got := payloadMTU(100, false); got != minMTU {
		t.Errorf("tiny link: %d", got)
	}
	if got := linkMTU(netip.MustParseAddr("127.0.0.2")); got < 1500 {
		t.Errorf("loopback link MTU %d", got)
	}
}
