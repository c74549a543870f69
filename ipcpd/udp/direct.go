package udp

import (
	"errors"
	"fmt"
	"net/netip"
	"os"

	"golang.org/x/sys/unix"

	"github.com/ouro-net/ouro/lib/pipe"
)

// Direct data sockets.
//
// Each flow gets a data socket of its own at both ends, a UDP socket on
// the IPCP's address with a port the kernel picks, connected to the peer
// end's data socket (the ports travel in the allocation handshake). The
// IPCP hands its socket to the application in a Direct record on the
// flow's channel (lib/pipe), and from then on the two applications
// exchange their packets through those sockets, one record per datagram
// ([kind][payload]: no endpoint id is needed, the socket is the flow),
// without crossing either IPCP process: the round trip and the
// throughput become those of plain UDP. The IPCP keeps the control
// plane (names, allocation, deallocation) on its own socket, and a copy
// of the data socket to forward what the application wrote before it
// took the socket. A connected socket accepts datagrams only from its
// peer, so a stranger cannot inject into a flow.
//
// Direct mode needs both ends to offer a port; an IPCP running the loss
// drill offers none (the drill must see every packet), nor does one
// whose peer has an IPv6 zone. Then data travels as before, through the
// IPCP's socket with the endpoint id in front.

// directOK reports whether this IPCP offers data sockets.
func (u *IPCP) directOK() bool { return u.loss == 0 && !u.indirect }

// dataSocket opens a flow's data socket on ip and returns it and its
// port.
func dataSocket(ip netip.Addr) (*os.File, uint16, error) {
	family, sa := unix.AF_INET, unix.Sockaddr(nil)
	if ip.Is4() {
		sa = &unix.SockaddrInet4{Addr: ip.As4()}
	} else {
		if ip.Zone() != "" {
			return nil, 0, errors.New("no data socket on a zoned address")
		}
		family, sa = unix.AF_INET6, &unix.SockaddrInet6{Addr: ip.As16()}
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, 0, fmt.Errorf("data socket: %w", err)
	}
	for _, o := range [][2]int{{unix.SO_RCVBUFFORCE, unix.SO_RCVBUF}, {unix.SO_SNDBUFFORCE, unix.SO_SNDBUF}} {
		if unix.SetsockoptInt(fd, unix.SOL_SOCKET, o[0], sockBuf) != nil {
			unix.SetsockoptInt(fd, unix.SOL_SOCKET, o[1], sockBuf)
		}
	}
	if family == unix.AF_INET {
		unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DONT)
	} else {
		unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MTU_DISCOVER, unix.IPV6_PMTUDISC_DONT)
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return nil, 0, fmt.Errorf("data socket: bind: %w", err)
	}
	got, err := unix.Getsockname(fd)
	if err != nil {
		unix.Close(fd)
		return nil, 0, fmt.Errorf("data socket: %w", err)
	}
	var port int
	switch a := got.(type) {
	case *unix.SockaddrInet4:
		port = a.Port
	case *unix.SockaddrInet6:
		port = a.Port
	}
	return os.NewFile(uintptr(fd), "udp data socket"), uint16(port), nil
}

// connectData connects data socket f to the peer's data socket at to.
func connectData(f *os.File, to netip.AddrPort) error {
	var sa unix.Sockaddr
	if to.Addr().Is4() {
		sa = &unix.SockaddrInet4{Addr: to.Addr().As4(), Port: int(to.Port())}
	} else {
		if to.Addr().Zone() != "" {
			return errors.New("no data socket towards a zoned address")
		}
		sa = &unix.SockaddrInet6{Addr: to.Addr().As16(), Port: int(to.Port())}
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var cerr error
	if err := rc.Control(func(fd uintptr) { cerr = unix.Connect(int(fd), sa) }); err != nil {
		return err
	}
	if cerr != nil {
		return fmt.Errorf("data socket: connect %s: %w", to, cerr)
	}
	return nil
}

// handOver connects fl's data socket d to the peer's (at port dport of
// the peer's address), keeps a copy for the IPCP and gives the socket
// to the application; it reports whether it did. Without a peer port,
// or on any failure before the hand-over, the socket is closed and the
// flow stays indirect.
func (u *IPCP) handOver(fl *uflow, d *dflow, dport uint16) bool {
	f := d.data
	d.data = nil
	if f == nil {
		return false
	}
	defer f.Close()
	if dport == 0 {
		return false
	}
	if err := connectData(f, netip.AddrPortFrom(u.canonical(fl.Peer).Addr(), dport)); err != nil {
		u.h.Log.Debug("flow stays indirect", "error", err)
		return false
	}
	fd, err := unix.Dup(int(f.Fd()))
	if err != nil {
		return false
	}
	unix.CloseOnExec(fd)
	// The IPCP's copy only writes: a writer outside the runtime's
	// poller, or every packet the application receives on the socket
	// would wake this process too.
	own, err := pipe.NewDatagramWriter(fd)
	if err != nil {
		unix.Close(fd)
		return false
	}
	if err := fl.App.Pipe.WriteFile(pipe.Direct, f); err != nil {
		// The application is gone; its end of the flow follows.
		own.Close()
		return false
	}
	d.direct.Store(own)
	u.ctr.directFlows.Add(1)
	return true
}

// txDirect forwards what the application wrote to its channel (before
// it took the data socket) through the data socket, until the flow
// ends. The IPCP's copy of the socket is closed at the end.
func (u *IPCP) txDirect(fl *uflow) {
	own := direct(fl)
	defer own.Close()
	f := fl.App
	// One packet at a time: only what the application wrote before it
	// took its socket comes this way.
	var bufs [1][]byte
	var sizes [1]int
	var kinds [1]pipe.Kind
	bufs[0] = make([]byte, fl.MTU+1)
	out := make([][]byte, 0, 1)
	for {
		n, err := f.Pipe.ReadBatch(bufs[:], sizes[:], kinds[:])
		if err != nil {
			return
		}
		done := false
		out = out[:0]
		for i := 0; i < n && !done; i++ {
			switch {
			case kinds[i] == pipe.Dealloc:
				done = true
			case kinds[i] != pipe.Data:
			case sizes[i] < 0 || sizes[i] > fl.MTU:
				f.Drops.Add(1)
			default:
				f.PktsIn.Add(1)
				f.BytesIn.Add(uint64(sizes[i]))
				out = append(out, bufs[i][:sizes[i]])
			}
		}
		if len(out) > 0 {
			sent, _ := own.WriteBatch(out)
			u.eng.Counters.TxData.Add(uint64(sent))
			f.Drops.Add(uint64(len(out) - sent))
		}
		if done {
			return
		}
	}
}
