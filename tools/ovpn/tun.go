package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"

	"github.com/songgao/water"

	"github.com/ouro-net/ouro/lib/netlink"
)

// Limits of the TUN MTU: IPv4's minimum, and what one flow packet's
// length field allows.
const (
	minMTU = 576
	maxMTU = 65535
	// defaultMTU is the server's TUN MTU until its first client tells it
	// what the flows carry.
	defaultMTU = 1400
)

// errNeedAdmin is the error for a missing privilege.
var errNeedAdmin = errors.New("permission denied: ovpn needs root or CAP_NET_ADMIN to create and configure its TUN device")

// tunIface is what the tunnel needs of its device: whole packets in and
// out, its name, and its MTU. openTUN gives the real one; tests give a
// device made of channels.
type tunIface interface {
	io.ReadWriteCloser
	Name() string
	MTU() int
	SetMTU(mtu int) error
}

// tunDev is the TUN device: packets are read and written whole, without
// the packet-information header (IFF_NO_PI).
type tunDev struct {
	io.ReadWriteCloser
	name   string
	index  int
	prefix netip.Prefix

	mu  sync.Mutex
	mtu int
}

// addrOwner returns the interface that already holds address a, if any.
func addrOwner(a netip.Addr) (string, bool) {
	ifs, err := net.Interfaces()
	if err != nil {
		return "", false
	}
	for _, ifi := range ifs {
		addrs, err := ifi.Addrs()
		if err != nil {
			continue
		}
		for _, ad := range addrs {
			if ipn, ok := ad.(*net.IPNet); ok {
				if x, ok := netip.AddrFromSlice(ipn.IP); ok && x.Unmap() == a.Unmap() {
					return ifi.Name, true
				}
			}
		}
	}
	return "", false
}

// openTUNIface is openTUN as a tunIface.
func openTUNIface(name string, p netip.Prefix, mtu int) (tunIface, error) {
	t, err := openTUN(name, p, mtu)
	if err != nil {
		return nil, err
	}
	return t, nil
}

// Name returns the device's name.
func (t *tunDev) Name() string { return t.name }

// MTU returns the device's MTU.
func (t *tunDev) MTU() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.mtu
}

// SetMTU sets the device's MTU, clamped to what IP and the flow allow.
func (t *tunDev) SetMTU(mtu int) error { return t.setMTU(mtu) }

// openTUN creates the TUN device name (a kernel template such as
// "ovpn%d" picks a free one), gives it address p and the MTU, and brings
// it up. Closing it removes the device. Errors say what is wrong in the
// user's terms: no privilege, no TUN support, device busy, address in use.
func openTUN(name string, p netip.Prefix, mtu int) (*tunDev, error) {
	if owner, ok := addrOwner(p.Addr()); ok {
		return nil, fmt.Errorf("address %s is in use (on %s)", p.Addr(), owner)
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		return nil, fmt.Errorf("TUN unavailable: %w (load the tun module, or run where /dev/net/tun exists)", err)
	}
	ifce, err := water.New(water.Config{DeviceType: water.TUN, PlatformSpecificParams: water.PlatformSpecificParams{Name: name}})
	if err != nil {
		switch {
		case errors.Is(err, syscall.EPERM), errors.Is(err, syscall.EACCES):
			return nil, errNeedAdmin
		case errors.Is(err, syscall.EBUSY):
			return nil, fmt.Errorf("TUN device %q is in use by another process", name)
		case errors.Is(err, syscall.ENODEV), errors.Is(err, syscall.ENXIO), errors.Is(err, syscall.ENOENT):
			return nil, fmt.Errorf("TUN unavailable: %w", err)
		}
		return nil, fmt.Errorf("create TUN device %q: %w", name, err)
	}
	t := &tunDev{ReadWriteCloser: ifce, name: ifce.Name(), prefix: p}
	ifi, err := net.InterfaceByName(t.name)
	if err != nil {
		ifce.Close()
		return nil, fmt.Errorf("TUN device %s: %w", t.name, err)
	}
	t.index = ifi.Index
	if err := t.setMTU(mtu); err != nil {
		ifce.Close()
		return nil, err
	}
	if err := netlink.AddAddr(t.index, p); err != nil {
		ifce.Close()
		if errors.Is(err, syscall.EEXIST) || errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("address %s is in use: %w", p, err)
		}
		return nil, adminErr(err)
	}
	if err := netlink.SetUp(t.index); err != nil {
		ifce.Close()
		return nil, adminErr(err)
	}
	return t, nil
}

func (t *tunDev) setMTU(mtu int) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	mtu = max(minMTU, min(mtu, maxMTU))
	if t.prefix.Addr().Is6() {
		mtu = max(mtu, 1280)
	}
	if mtu == t.mtu {
		return nil
	}
	if err := netlink.SetMTU(t.index, mtu); err != nil {
		return adminErr(err)
	}
	t.mtu = mtu
	return nil
}

// adminErr turns EPERM into errNeedAdmin.
func adminErr(err error) error {
	if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) {
		return fmt.Errorf("%w (%v)", errNeedAdmin, err)
	}
	return err
}
