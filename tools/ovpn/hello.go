package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// The control messages ovpn exchanges on its flow, next to the IP
// packets. Every control message starts with a zero byte, which no IP
// packet does (its first nibble is the IP version, 4 or 6), then the
// protocol version and the message type:
//
//	0x00 VERSION TYPE BODY...
//
//	hello    (client to server) session u64, prefix length u8, address length u8 (4|16), address
//	welcome  (server to client) prefix length u8, address length u8, the server's address, MTU u16
//	refuse   (server to client) code u8, reason length u8, reason (UTF-8, at most maxReason bytes)
//	keepalive (either way)      nothing
//
// The session is a random number a client draws once per process: a
// client that reconnects after its flow died presents the same session
// and takes its address back; a different client claiming an address
// that is in use is refused.
const (
	ctlMarker  = 0x00
	ctlVersion = 1

	msgHello     = 1
	msgWelcome   = 2
	msgRefuse    = 3
	msgKeepalive = 4

	maxReason = 200
)

// Refusal codes.
const (
	refuseConflict = 1 // the address belongs to another client
	refuseAddress  = 2 // the address is not usable in the server's prefix
	refuseFull     = 3 // the server has as many clients as it takes
	refuseVersion  = 4 // the hello's version is not spoken here
	refuseBad      = 5 // the hello does not parse
)

// errNotControl means a packet is not a control message (it is data).
var errNotControl = errors.New("not a control message")

// errBadControl means a control message does not parse.
var errBadControl = errors.New("malformed control message")

// versionError is a control message of a version this side does not speak.
type versionError struct{ got int }

func (e *versionError) Error() string {
	return fmt.Sprintf("control message version %d, this ovpn speaks %d", e.got, ctlVersion)
}

// control is one decoded control message.
type control struct {
	Type    byte
	Session uint64       // hello
	Prefix  netip.Prefix // hello: the client's address; welcome: the server's
	MTU     int          // welcome
	Code    byte         // refuse
	Reason  string       // refuse
}

// isControl reports whether a packet is a control message.
func isControl(b []byte) bool { return len(b) > 0 && b[0] == ctlMarker }

// encode renders m.
func (m control) encode() []byte {
	b := []byte{ctlMarker, ctlVersion, m.Type}
	switch m.Type {
	case msgHello:
		b = binary.BigEndian.AppendUint64(b, m.Session)
		b = appendPrefix(b, m.Prefix)
	case msgWelcome:
		b = appendPrefix(b, m.Prefix)
		mtu := m.MTU
		if mtu < 0 || mtu > 0xffff {
			mtu = 0xffff
		}
		b = binary.BigEndian.AppendUint16(b, uint16(mtu))
	case msgRefuse:
		r := m.Reason
		if len(r) > maxReason {
			r = r[:maxReason]
		}
		b = append(b, m.Code, byte(len(r)))
		b = append(b, r...)
	}
	return b
}

func appendPrefix(b []byte, p netip.Prefix) []byte {
	a := p.Addr().Unmap()
	raw := a.AsSlice()
	b = append(b, byte(p.Bits()), byte(len(raw)))
	return append(b, raw...)
}

// decodeControl parses one control message. It never panics: a packet
// that is not control fails with errNotControl, one that does not parse
// with errBadControl, and one of another version with *versionError.
func decodeControl(b []byte) (control, error) {
	var m control
	if !isControl(b) {
		return m, errNotControl
	}
	if len(b) < 3 {
		return m, fmt.Errorf("%w: %d bytes", errBadControl, len(b))
	}
	if b[1] != ctlVersion {
		return m, &versionError{got: int(b[1])}
	}
	m.Type = b[2]
	body := b[3:]
	var err error
	switch m.Type {
	case msgHello:
		if len(body) < 8 {
			return m, fmt.Errorf("%w: short hello", errBadControl)
		}
		m.Session = binary.BigEndian.Uint64(body)
		m.Prefix, body, err = readPrefix(body[8:])
	case msgWelcome:
		m.Prefix, body, err = readPrefix(body)
		if err == nil {
			if len(body) < 2 {
				return m, fmt.Errorf("%w: short welcome", errBadControl)
			}
			m.MTU = int(binary.BigEndian.Uint16(body))
			body = body[2:]
		}
	case msgRefuse:
		if len(body) < 2 || int(body[1]) > len(body)-2 || body[1] > maxReason {
			return m, fmt.Errorf("%w: short refusal", errBadControl)
		}
		m.Code = body[0]
		m.Reason = string(body[2 : 2+int(body[1])])
		body = body[2+int(body[1]):]
	case msgKeepalive:
	default:
		return m, fmt.Errorf("%w: unknown type %d", errBadControl, m.Type)
	}
	if err != nil {
		return m, err
	}
	if len(body) != 0 {
		return m, fmt.Errorf("%w: %d trailing bytes", errBadControl, len(body))
	}
	return m, nil
}

func readPrefix(b []byte) (netip.Prefix, []byte, error) {
	if len(b) < 2 {
		return netip.Prefix{}, nil, fmt.Errorf("%w: short address", errBadControl)
	}
	bits, n := int(b[0]), int(b[1])
	if (n != 4 && n != 16) || len(b) < 2+n {
		return netip.Prefix{}, nil, fmt.Errorf("%w: address of %d bytes", errBadControl, n)
	}
	a, _ := netip.AddrFromSlice(b[2 : 2+n])
	if a.Is4In6() {
		return netip.Prefix{}, nil, fmt.Errorf("%w: IPv4-mapped address %s", errBadControl, a)
	}
	if bits > a.BitLen() {
		return netip.Prefix{}, nil, fmt.Errorf("%w: prefix length %d", errBadControl, bits)
	}
	return netip.PrefixFrom(a, bits), b[2+n:], nil
}

// ipDst returns the destination address of an IP packet, if it is one.
func ipDst(b []byte) (netip.Addr, bool) { return ipAddr(b, 16, 24) }

// ipSrc returns the source address of an IP packet, if it is one.
func ipSrc(b []byte) (netip.Addr, bool) { return ipAddr(b, 12, 8) }

// ipAddr returns the address at offset off4 of an IPv4 header or off6
// of an IPv6 header, if b is an IP packet long enough to hold one.
func ipAddr(b []byte, off4, off6 int) (netip.Addr, bool) {
	if len(b) < 1 {
		return netip.Addr{}, false
	}
	switch b[0] >> 4 {
	case 4:
		if len(b) < 20 {
			return netip.Addr{}, false
		}
		return netip.AddrFrom4([4]byte(b[off4 : off4+4])), true
	case 6:
		if len(b) < 40 {
			return netip.Addr{}, false
		}
		return netip.AddrFrom16([16]byte(b[off6 : off6+16])), true
	}
	return netip.Addr{}, false
}
