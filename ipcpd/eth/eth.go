// Package eth is the eth-dix shim IPCP kind: it runs a layer directly on
// an Ethernet segment, with no IP underneath. Bootstrap parameters:
//
//	dev IFNAME [ethertype 0xA000]
//
// The IPCP opens an AF_PACKET socket on IFNAME for the one EtherType
// (default 0xA000) and speaks the protocol of package shim in the frames
// of package frame (both under this directory, shared with the tap
// kind): names are found by a broadcast query, flows are allocated by a
// request/response carrying both endpoint ids, every data frame carries
// the destination endpoint id and the payload length. The flow MTU is
// the device MTU minus the 4-byte shim header (1496 on a standard
// Ethernet link). A netlink watcher marks every flow DOWN the moment the
// link loses carrier or is set down, and UP when it is back.
//
// Socket choices: the socket is created unbound (protocol 0) and then
// bound to the device and EtherType, so it never queues frames of other
// interfaces; PACKET_QDISC_BYPASS sends frames straight to the driver
// (the shim has its own queues: the flows' data channels); SO_RCVBUF and
// SO_SNDBUF are forced to 4 MiB (root can exceed rmem_max) so bursts of
// small frames are not dropped while the reader is descheduled. The
// socket is non-blocking and read through the runtime poller, so Close
// unblocks the reader, and reads and writes use preallocated buffers.
// Batching (recvmmsg, PACKET_MMAP rings) is not used: one frame per
// system call keeps the code small and has not been measured to be the
// bottleneck. A read may fail once with ENETDOWN after the link was set
// down; the socket keeps working when it comes back, and the engine
// ignores that error.
package eth

import (
	"github.com/ouro-net/ouro/ipcpd"
	"github.com/ouro-net/ouro/ipcpd/shim"
)

// Kind is the IPCP type name.
const Kind = "eth-dix"

// New is the eth-dix kind's constructor.
func New(h *ipcpd.Host) (ipcpd.IPCP, error) {
	return shim.NewIPCP(h, Kind, openPacket), nil
}
