package eth

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"

	"github.com/ouro-net/ouro/ipcpd/eth/frame"
	"github.com/ouro-net/ouro/ipcpd/shim"
)

// sockBuf is the socket buffer size asked for in each direction.
const sockBuf = 4 << 20

// openPacket opens an AF_PACKET socket on dev for etherType.
func openPacket(log hclog.Logger, dev string, etherType uint16) (*shim.Device, error) {
	ifi, err := net.InterfaceByName(dev)
	if err != nil {
		return nil, fmt.Errorf("%s IPCP: device %q: %w (list devices with: ip link)", Kind, dev, err)
	}
	mac, err := frame.MACFrom(ifi.HardwareAddr)
	if err != nil {
		return nil, fmt.Errorf("%s IPCP: device %q is not an Ethernet device: %w", Kind, dev, err)
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("%s IPCP: AF_PACKET socket (needs CAP_NET_RAW): %w", Kind, err)
	}
	info := "AF_PACKET"
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1); err != nil {
		log.Debug("PACKET_QDISC_BYPASS not available", "error", err)
	} else {
		info += ", PACKET_QDISC_BYPASS"
	}
	for _, o := range [][2]int{{unix.SO_RCVBUFFORCE, unix.SO_RCVBUF}, {unix.SO_SNDBUFFORCE, unix.SO_SNDBUF}} {
		if unix.SetsockoptInt(fd, unix.SOL_SOCKET, o[0], sockBuf) != nil {
			_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, o[1], sockBuf)
		}
	}
	if v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF); err == nil {
		info += fmt.Sprintf(", SO_RCVBUF %d KiB", v/1024)
	}
	sa := &unix.SockaddrLinklayer{Protocol: htons(etherType), Ifindex: ifi.Index}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("%s IPCP: bind AF_PACKET socket to %s, EtherType 0x%04x: %w", Kind, dev, etherType, err)
	}
	// The descriptor is non-blocking, so os.NewFile puts it under the
	// runtime poller: Read parks the goroutine, Close wakes it.
	f := os.NewFile(uintptr(fd), "packet:"+dev)
	m, err := shim.NewFileMedium(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s IPCP: AF_PACKET socket on %s: %w", Kind, dev, err)
	}
	return shim.NewDevice(ifi, mac, info, m), nil
}

// htons converts to network byte order, as sockaddr_ll wants.
func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}
