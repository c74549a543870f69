package udp

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// DefaultPort is the UDP port an IPCP binds, and peers are assumed to
// listen on, when none is given.
const DefaultPort = 3435

// MaxMTU caps the MTU reported to flows (the flow layer's limit).
const MaxMTU = 65000

// minMTU is the smallest MTU reported, whatever the interface says.
const minMTU = 512

// config is what the bootstrap parameters say.
type config struct {
	bind  netip.AddrPort   // local address; port 0: the kernel picks one
	peers []netip.AddrPort // whom to ask for names
	loss  float64          // loss drill: share of data packets dropped (0: none)
}

const usage = "ip ADDR [port N] [peer ADDR[:PORT] ...] [loss PCT]"

// parseParams checks the bootstrap parameters of a udp4 (v6 false) or
// udp6 (v6 true) IPCP.
func parseParams(typ string, v6 bool, params map[string]string) (config, error) {
	var c config
	for k := range params {
		switch k {
		case "ip", "port", "peer", "loss":
		default:
			return c, fmt.Errorf("%s IPCP: unknown parameter %q (want %s)", typ, k, usage)
		}
	}
	s, ok := params["ip"]
	if !ok || s == "" {
		return c, fmt.Errorf("%s IPCP: missing parameter ip (want %s)", typ, usage)
	}
	ip, err := netip.ParseAddr(strings.Trim(s, "[]"))
	if err != nil {
		return c, fmt.Errorf("%s IPCP: ip %q is not an IP address", typ, s)
	}
	if err := checkFamily(ip, v6); err != nil {
		return c, fmt.Errorf("%s IPCP: ip %s: %w", typ, s, err)
	}
	if ip.IsUnspecified() || ip.IsMulticast() {
		return c, fmt.Errorf("%s IPCP: ip %s: give the unicast address of this host that peers reach", typ, s)
	}
	port := uint64(DefaultPort)
	if s, ok := params["port"]; ok {
		port, err = strconv.ParseUint(s, 10, 16)
		if err != nil {
			return c, fmt.Errorf("%s IPCP: port %q is not a number between 0 and 65535", typ, s)
		}
	}
	c.bind = netip.AddrPortFrom(ip, uint16(port))
	if s, ok := params["loss"]; ok {
		pct, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
		if err != nil || pct <= 0 || pct > 50 {
			return c, fmt.Errorf("%s IPCP: loss %q: want a percentage above 0 and at most 50", typ, s)
		}
		c.loss = pct / 100
	}
	seen := make(map[netip.AddrPort]bool)
	for _, s := range strings.Split(params["peer"], ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		p, err := parsePeer(s, v6)
		if err != nil {
			return c, fmt.Errorf("%s IPCP: peer %q: %w", typ, s, err)
		}
		if !seen[p] {
			seen[p] = true
			c.peers = append(c.peers, p)
		}
	}
	return c, nil
}

// parsePeer parses ADDR or ADDR:PORT ([ADDR]:PORT, ADDR or [ADDR] for
// IPv6); the port defaults to DefaultPort.
func parsePeer(s string, v6 bool) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		ip, err2 := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"))
		if err2 != nil {
			return ap, fmt.Errorf("want ADDR or ADDR:PORT (an IPv6 address with a port as [ADDR]:PORT)")
		}
		ap = netip.AddrPortFrom(ip, DefaultPort)
	}
	if err := checkFamily(ap.Addr(), v6); err != nil {
		return ap, err
	}
	if ap.Port() == 0 {
		return ap, fmt.Errorf("port 0 is not a peer's port")
	}
	if ap.Addr().IsUnspecified() || ap.Addr().IsMulticast() {
		return ap, fmt.Errorf("not a unicast address")
	}
	return ap, nil
}

func checkFamily(ip netip.Addr, v6 bool) error {
	switch {
	case v6 && (!ip.Is6() || ip.Is4In6()):
		return fmt.Errorf("not an IPv6 address (udp6 takes IPv6 only; use udp4 for IPv4)")
	case !v6 && !ip.Is4():
		return fmt.Errorf("not an IPv4 address (udp4 takes IPv4 only; use udp6 for IPv6)")
	}
	return nil
}

// linkMTU returns the MTU of the interface holding ip, or 1500 when it
// cannot be found.
func linkMTU(ip netip.Addr) int {
	ifs, err := net.Interfaces()
	if err != nil {
		return 1500
	}
	best := 0
	for _, ifi := range ifs {
		addrs, err := ifi.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			n, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			pfx, ok := netip.AddrFromSlice(n.IP)
			if !ok {
				continue
			}
			if pfx.Unmap() == ip.WithZone("") {
				return ifi.MTU
			}
			// 127.0.0.2 lives on lo through 127.0.0.1/8.
			if ifi.Flags&net.FlagLoopback != 0 && n.Contains(net.IP(ip.AsSlice())) {
				best = ifi.MTU
			}
		}
	}
	if best > 0 {
		return best
	}
	return 1500
}

// payloadMTU is what a flow may carry over a link of mtu bytes: minus
// the IP header (20 or 40 bytes), the UDP header (8) and the data header.
func payloadMTU(link int, v6 bool) int {
	ipHdr := 20
	if v6 {
		ipHdr = 40
	}
	return min(max(link-ipHdr-8-eidLen, minMTU), MaxMTU)
}
