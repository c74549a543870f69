package netlink

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Configuring links. SetMTU, SetUp and AddAddr each send one rtnetlink
// request (with NLM_F_ACK) on a fresh NETLINK_ROUTE socket in the network
// namespace of the calling thread and wait for the kernel's answer, so an
// error the kernel reports comes back as an *ErrnoError (errors.Is works
// with the unix.Errno: EPERM without CAP_NET_ADMIN, EEXIST for an address
// already on the link, ENODEV for a missing link). They are what a tool
// needs to bring up a device it created (ovpn's TUN) without running the
// ip tool.

const ifaddrmsgLen = 8 // family u8, prefixlen u8, flags u8, scope u8, index u32

var reqSeq atomic.Uint32

// SetMTU sets the MTU of interface index.
func SetMTU(index, mtu int) error {
	if mtu <= 0 {
		return fmt.Errorf("netlink: set mtu of index %d: bad mtu %d", index, mtu)
	}
	b := linkReq(index, 0, 0)
	b = appendAttr(b, unix.IFLA_MTU, binary.NativeEndian.AppendUint32(nil, uint32(mtu)))
	if err := request(b); err != nil {
		return fmt.Errorf("netlink: set mtu %d on index %d: %w", mtu, index, err)
	}
	return nil
}

// SetUp sets interface index administratively up.
func SetUp(index int) error {
	if err := request(linkReq(index, unix.IFF_UP, unix.IFF_UP)); err != nil {
		return fmt.Errorf("netlink: set index %d up: %w", index, err)
	}
	return nil
}

// AddAddr adds the address p (its address and prefix length, as in
// `ip addr add 10.9.0.1/24`) to interface index. Adding an address the
// interface already has fails with EEXIST.
func AddAddr(index int, p netip.Prefix) error {
	if !p.IsValid() {
		return fmt.Errorf("netlink: add address to index %d: invalid prefix", index)
	}
	a := p.Addr().Unmap()
	fam := byte(unix.AF_INET6)
	if a.Is4() {
		fam = unix.AF_INET
	}
	if index <= 0 {
		return fmt.Errorf("netlink: add address %s: bad interface index %d", p, index)
	}
	b := header(unix.RTM_NEWADDR, unix.NLM_F_REQUEST|unix.NLM_F_ACK|unix.NLM_F_CREATE|unix.NLM_F_EXCL)
	msg := make([]byte, ifaddrmsgLen)
	msg[0] = fam
	msg[1] = byte(p.Bits())
	msg[3] = unix.RT_SCOPE_UNIVERSE
	binary.NativeEndian.PutUint32(msg[4:], uint32(index))
	b = append(b, msg...)
	raw := a.AsSlice()
	b = appendAttr(b, unix.IFA_LOCAL, raw)
	b = appendAttr(b, unix.IFA_ADDRESS, raw)
	if err := request(b); err != nil {
		return fmt.Errorf("netlink: add address %s to index %d: %w", p, index, err)
	}
	return nil
}

// header starts a request message; request fills in its length and
// sequence number.
func header(typ, flags uint16) []byte {
	b := make([]byte, nlmsgHdrLen)
	binary.NativeEndian.PutUint16(b[4:6], typ)
	binary.NativeEndian.PutUint16(b[6:8], flags)
	return b
}

// linkReq builds an RTM_NEWLINK request changing the flags in change to
// flags on interface index.
func linkReq(index int, flags, change uint32) []byte {
	b := header(unix.RTM_NEWLINK, unix.NLM_F_REQUEST|unix.NLM_F_ACK)
	msg := make([]byte, ifinfomsgLen)
	msg[0] = unix.AF_UNSPEC
	binary.NativeEndian.PutUint32(msg[4:8], uint32(int32(index)))
	binary.NativeEndian.PutUint32(msg[8:12], flags)
	binary.NativeEndian.PutUint32(msg[12:16], change)
	return append(b, msg...)
}

// appendAttr appends one aligned rtattr.
func appendAttr(b []byte, typ uint16, v []byte) []byte {
	b = binary.NativeEndian.AppendUint16(b, uint16(rtattrHdrLen+len(v)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, v...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// request sends one request and waits for its acknowledgement.
func request(b []byte) error {
	if len(b) < nlmsgHdrLen+4 {
		return errors.New("short request")
	}
	seq := reqSeq.Add(1)
	binary.NativeEndian.PutUint32(b[0:4], uint32(len(b)))
	binary.NativeEndian.PutUint32(b[8:12], seq)
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(fd)
	// A reply that never comes must not hang the caller.
	tv := unix.Timeval{Sec: 5}
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	if err := unix.Sendto(fd, b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	buf := make([]byte, 1<<14)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("receive: %w", err)
		}
		done, err := ackOf(buf[:n], seq)
		if done || err != nil {
			return err
		}
	}
}

// ackOf looks for the acknowledgement of request seq in one datagram: it
// reports whether it found it and the error the kernel answered.
func ackOf(b []byte, seq uint32) (bool, error) {
	ne := binary.NativeEndian
	for len(b) > 0 {
		if len(b) < nlmsgHdrLen {
			return false, fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(b))
		}
		n := int(ne.Uint32(b[0:4]))
		if n < nlmsgHdrLen || n > len(b) {
			return false, fmt.Errorf("%w: message length %d, %d bytes left", ErrMalformed, n, len(b))
		}
		if ne.Uint16(b[4:6]) == unix.NLMSG_ERROR && ne.Uint32(b[8:12]) == seq {
			body := b[nlmsgHdrLen:n]
			if len(body) < 4 {
				return false, fmt.Errorf("%w: short NLMSG_ERROR", ErrMalformed)
			}
			if code := int32(ne.Uint32(body[0:4])); code != 0 {
				return true, &ErrnoError{Errno: unix.Errno(-code)}
			}
			return true, nil
		}
		next := align4(n)
		if next > len(b) {
			next = len(b)
		}
		b = b[next:]
	}
	return false, nil
}
