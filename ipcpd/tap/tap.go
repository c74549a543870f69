// Package tap is the tap shim IPCP kind: the eth-dix protocol and
// framing (packages ipcpd/shim and ipcpd/eth/frame, shared) carried
// through a TAP device instead of an AF_PACKET socket. Bootstrap
// parameters:
//
//	dev TAPNAME [ethertype 0xA000]
//
// The device is opened with github.com/songgao/water; it is created if
// it does not exist (and then vanishes when the IPCP closes), and brought
// up. A device that existed before (made with `ip tuntap add ... mode
// tap`, hence persistent) is attached to and left in place: water clears
// the persist flag when it opens a device, so the IPCP sets it again.
//
// The IPCP is a station on the far side of the TAP device: what the
// kernel transmits on the device the IPCP receives, and what the IPCP
// writes the kernel receives on the device. TAP devices enslaved to a
// Linux bridge (directly, or through bridges joined by veth pairs) thus
// form one Ethernet segment. The station cannot use the device's own MAC
// (a bridge keeps frames for its ports' own addresses for the host), so
// its MAC is the device's MAC with the low bit of the last byte flipped
// (and forced locally administered and unicast): stable as long as the
// device lives, distinct from every port's address.
//
// The IPCP sees every frame the kernel sends on the device — IPv6
// neighbour discovery and MLD reports arrive unasked, and a bridge floods
// unknown unicast — so frames of other EtherTypes or for other stations
// are counted and dropped (see `irm layer show`).
//
// water opens the device non-blocking and wraps it in an *os.File, so
// reads go through the runtime poller and closing the device unblocks
// the reader; Close therefore needs no extra machinery. The flow MTU is
// the device MTU (1500 unless changed) minus the 4-byte shim header, and
// the carrier is watched through netlink as for eth-dix (a TAP device
// has carrier while the IPCP holds it open; setting it down marks every
// flow DOWN; the kernel may report that up to a second late, see
// lib/netlink).
package tap

import (
	"github.com/ouro-net/ouro/ipcpd"
	"github.com/ouro-net/ouro/ipcpd/shim"
)

// Kind is the IPCP type name.
const Kind = "tap"

// New is the tap kind's constructor.
func New(h *ipcpd.Host) (ipcpd.IPCP, error) {
	return shim.NewIPCP(h, Kind, openTAP), nil
}
