package netlink_test

import (
	"errors"
	"net"
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ouro-net/ouro/internal/testenv"
	"github.com/ouro-net/ouro/lib/netlink"
)

// TestConfigureLink sets the MTU, an IPv4 and an IPv6 address and the
// up flag of a veth end in a fresh namespace, and checks them through
// the net package.
func TestConfigureLink(t *testing.T) {
	testenv.RequireRoot(t)
	ns := testenv.NetNS(t)
	testenv.IP(t, "-n", ns, "link", "add", "ovd0", "type", "veth", "peer", "name", "ovd1")
	testenv.InNetNS(t, ns, func() {
		ifi, err := net.InterfaceByName("ovd0")
		if err != nil {
			t.Error(err)
			return
		}
		if ifi.Flags&net.FlagUp != 0 {
			t.Error("link up before SetUp")
		}
		p4 := netip.MustParsePrefix("10.77.0.1/24")
		p6 := netip.MustParsePrefix("fd00:77::1/64")
		for _, step := range []error{netlink.SetMTU(ifi.Index, 1321), netlink.AddAddr(ifi.Index, p4),
			netlink.AddAddr(ifi.Index, p6), netlink.SetUp(ifi.Index)} {
			if step != nil {
				t.Error(step)
				return
			}
		}
		if err := netlink.AddAddr(ifi.Index, p4); !errors.Is(err, unix.EEXIST) {
			t.Errorf("adding %s twice: %v, want EEXIST", p4, err)
		}
		if err := netlink.SetMTU(1<<30, 1400); !errors.Is(err, unix.ENODEV) {
			t.Errorf("MTU of a missing link: %v, want ENODEV", err)
		}
		if err := netlink.SetMTU(ifi.Index, 0); err == nil {
			t.Error("MTU 0 accepted")
		}
		ifi, err = net.InterfaceByName("ovd0")
		if err != nil {
			t.Error(err)
			return
		}
		if ifi.MTU != 1321 || ifi.Flags&net.FlagUp == 0 {
			t.Errorf("link after configuring: mtu %d flags %v", ifi.MTU, ifi.Flags)
		}
		addrs, err := ifi.Addrs()
		if err != nil {
			t.Error(err)
			return
		}
		have := map[string]bool{}
		for _, a := range addrs {
			have[a.String()] = true
		}
		if !have[p4.String()] || !have[p6.String()] {
			t.Errorf("addresses %v, want %s and %s", addrs, p4, p6)
		}
	})
}

func TestAddAddrBadInput(t *testing.T) {
	if err := netlink.AddAddr(1, netip.Prefix{}); err == nil {
		t.Error("invalid prefix accepted")
	}
	if err := netlink.AddAddr(0, netip.MustParsePrefix("10.0.0.1/8")); err == nil {
		t.Error("index 0 accepted")
	}
}
