// Package netlink watches the link state of a network interface through
// rtnetlink, so that a shim IPCP learns of carrier loss the moment the
// kernel does instead of waiting for a keepalive to time out.
//
// A Watcher opens a NETLINK_ROUTE socket (in the network namespace of
// the calling thread) subscribed to RTMGRP_LINK, then asks for the
// interface's current state with RTM_GETLINK, so no change can slip
// between the two. Every RTM_NEWLINK or RTM_DELLINK about the interface
// is decoded; the callback runs when the link's usability (Link.Carrier:
// present, administratively up, lower layer up and running) changes, and
// once at the start. If the socket overruns (ENOBUFS: the kernel dropped
// notifications) the watcher asks for the state again.
//
// The kernel reports carrier changes through its linkwatch work queue:
// at once for stacked devices such as veth, but rate-limited to one batch
// per second for others (TAP, most NICs), so carrier loss there may be
// seen up to a second late. Setting a link administratively down is
// always reported at once.
//
// SetMTU, SetUp and AddAddr configure a link (config.go): one acknowledged
// rtnetlink request each, for tools that bring up a device they created.
//
// Only golang.org/x/sys/unix is used; messages are parsed by hand (host
// byte order, 4-byte alignment) and the parser never panics on hostile
// input.
package netlink

import (
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// ErrMalformed means a netlink datagram does not parse.
var ErrMalformed = errors.New("malformed netlink message")

const (
	nlmsgHdrLen  = 16 // len u32, type u16, flags u16, seq u32, pid u32
	ifinfomsgLen = 16 // family u8, pad u8, type u16, index i32, flags u32, change u32
	rtattrHdrLen = 4  // len u16, type u16
	nlaTypeMask  = ^uint16(unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER)
)

// Link is the state of one interface as a link message reports it.
type Link struct {
	// Index is the interface index.
	Index int
	// Name is the interface name (IFLA_IFNAME), if the message had one.
	Name string
	// Flags are the IFF_* device flags.
	Flags uint32
	// MTU is the device MTU (IFLA_MTU), 0 if absent.
	MTU int
	// OperState is the RFC 2863 operational state (IFLA_OPERSTATE,
	// IF_OPER_* in linux/if.h), 0 (unknown) if absent.
	OperState uint8
	// Deleted is set for RTM_DELLINK, or when the kernel says the
	// interface does not exist.
	Deleted bool
}

// AdminUp reports IFF_UP: the link was set up.
func (l Link) AdminUp() bool { return l.Flags&unix.IFF_UP != 0 }

// LowerUp reports IFF_LOWER_UP: the driver signals carrier.
func (l Link) LowerUp() bool { return l.Flags&unix.IFF_LOWER_UP != 0 }

// Running reports IFF_RUNNING: the link is operationally up.
func (l Link) Running() bool { return l.Flags&unix.IFF_RUNNING != 0 }

// Carrier reports whether the link can carry frames: it exists, is set
// up, and has both carrier (IFF_LOWER_UP) and IFF_RUNNING.
func (l Link) Carrier() bool { return !l.Deleted && l.AdminUp() && l.LowerUp() && l.Running() }

// String describes the link for logs and show output.
func (l Link) String() string {
	if l.Deleted {
		return fmt.Sprintf("%s (index %d): gone", l.Name, l.Index)
	}
	state := "down"
	switch {
	case l.Carrier():
		state = "up"
	case !l.AdminUp():
		state = "down (administratively)"
	case !l.LowerUp():
		state = "down (no carrier)"
	case !l.Running():
		state = "down (not running)"
	}
	return fmt.Sprintf("%s (index %d): %s", l.Name, l.Index, state)
}

// ErrnoError is an NLMSG_ERROR the kernel sent in answer to a request.
type ErrnoError struct{ Errno unix.Errno }

// Error describes the kernel's answer.
func (e *ErrnoError) Error() string { return fmt.Sprintf("netlink: kernel answered %v", e.Errno) }

// Unwrap returns the errno, for errors.Is.
func (e *ErrnoError) Unwrap() error { return e.Errno }

// Parse decodes every RTM_NEWLINK and RTM_DELLINK in one netlink datagram
// and calls fn for each; other message types are skipped. A datagram that
// does not parse fails with ErrMalformed (links decoded before the bad
// part have been passed to fn); an NLMSG_ERROR carrying an error code
// fails with *ErrnoError.
func Parse(b []byte, fn func(Link)) error {
	ne := binary.NativeEndian
	for len(b) > 0 {
		if len(b) < nlmsgHdrLen {
			return fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(b))
		}
		n := int(ne.Uint32(b[0:4]))
		typ := ne.Uint16(b[4:6])
		if n < nlmsgHdrLen || n > len(b) {
			return fmt.Errorf("%w: message length %d, %d bytes left", ErrMalformed, n, len(b))
		}
		body := b[nlmsgHdrLen:n]
		switch typ {
		case unix.RTM_NEWLINK, unix.RTM_DELLINK:
			l, err := parseLink(body)
			if err != nil {
				return err
			}
			l.Deleted = typ == unix.RTM_DELLINK
			fn(l)
		case unix.NLMSG_ERROR:
			if len(body) < 4 {
				return fmt.Errorf("%w: short NLMSG_ERROR", ErrMalformed)
			}
			if code := int32(ne.Uint32(body[0:4])); code != 0 {
				return &ErrnoError{Errno: unix.Errno(-code)}
			}
		}
		// Advance to the next aligned message.
		next := align4(n)
		if next > len(b) {
			next = len(b)
		}
		b = b[next:]
	}
	return nil
}

func parseLink(b []byte) (Link, error) {
	ne := binary.NativeEndian
	var l Link
	if len(b) < ifinfomsgLen {
		return l, fmt.Errorf("%w: short ifinfomsg", ErrMalformed)
	}
	l.Index = int(int32(ne.Uint32(b[4:8])))
	l.Flags = ne.Uint32(b[8:12])
	attrs := b[ifinfomsgLen:]
	for len(attrs) >= rtattrHdrLen {
		n := int(ne.Uint16(attrs[0:2]))
		typ := ne.Uint16(attrs[2:4]) & nlaTypeMask
		if n < rtattrHdrLen || n > len(attrs) {
			return l, fmt.Errorf("%w: attribute length %d, %d bytes left", ErrMalformed, n, len(attrs))
		}
		v := attrs[rtattrHdrLen:n]
		switch typ {
		case unix.IFLA_IFNAME:
			l.Name = cString(v)
		case unix.IFLA_MTU:
			if len(v) >= 4 {
				l.MTU = int(ne.Uint32(v))
			}
		case unix.IFLA_OPERSTATE:
			if len(v) >= 1 {
				l.OperState = v[0]
			}
		}
		next := align4(n)
		if next > len(attrs) {
			next = len(attrs)
		}
		attrs = attrs[next:]
	}
	return l, nil
}

func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

func align4(n int) int { return (n + 3) &^ 3 }
