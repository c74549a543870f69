package tap

import (
	"fmt"
	"net"
	"os"

	"github.com/hashicorp/go-hclog"
	"github.com/songgao/water"
	"golang.org/x/sys/unix"

	"github.com/ouro-net/ouro/ipcpd/eth/frame"
	"github.com/ouro-net/ouro/ipcpd/shim"
)

// openTAP opens (creating if needed) the TAP device dev and brings it up.
func openTAP(log hclog.Logger, dev string, etherType uint16) (*shim.Device, error) {
	if len(dev) >= unix.IFNAMSIZ {
		return nil, fmt.Errorf("%s IPCP: device name %q is longer than %d bytes", Kind, dev, unix.IFNAMSIZ-1)
	}
	_, err := net.InterfaceByName(dev)
	existed := err == nil
	ifce, err := water.New(water.Config{DeviceType: water.TAP, PlatformSpecificParams: water.PlatformSpecificParams{Name: dev}})
	if err != nil {
		if existed {
			return nil, fmt.Errorf("%s IPCP: %q exists but cannot be attached as a TAP device (another kind of device, or in use): %w", Kind, dev, err)
		}
		return nil, fmt.Errorf("%s IPCP: create TAP device %q (needs CAP_NET_ADMIN and /dev/net/tun): %w", Kind, dev, err)
	}
	f, ok := ifce.ReadWriteCloser.(*os.File)
	if !ok {
		ifce.Close()
		return nil, fmt.Errorf("%s IPCP: TAP device %q: unexpected handle %T", Kind, dev, ifce.ReadWriteCloser)
	}
	fail := func(err error) (*shim.Device, error) {
		f.Close()
		return nil, err
	}
	info := "TAP (created)"
	if existed {
		info = "TAP (existing, persistent)"
		if err := setPersist(f); err != nil {
			return fail(fmt.Errorf("%s IPCP: TAP device %q: keep persistent: %w", Kind, dev, err))
		}
	}
	if err := bringUp(dev); err != nil {
		return fail(fmt.Errorf("%s IPCP: bring %s up: %w", Kind, dev, err))
	}
	ifi, err := net.InterfaceByName(dev)
	if err != nil {
		return fail(fmt.Errorf("%s IPCP: TAP device %q: %w", Kind, dev, err))
	}
	mac, err := frame.MACFrom(ifi.HardwareAddr)
	if err != nil {
		return fail(fmt.Errorf("%s IPCP: TAP device %q: %w", Kind, dev, err))
	}
	mac[0] = (mac[0] | 0x02) &^ 0x01
	mac[5] ^= 0x01
	log.Debug("TAP device open", "device", dev, "existed", existed, "kernel_mac", ifi.HardwareAddr.String(),
		"station_mac", mac.String(), "ethertype", etherType)
	m, err := shim.NewFileMedium(f)
	if err != nil {
		return fail(fmt.Errorf("%s IPCP: TAP device %q: %w", Kind, dev, err))
	}
	return shim.NewDevice(ifi, mac, fmt.Sprintf("%s, kernel side %s", info, ifi.HardwareAddr), m), nil
}

// setPersist sets TUNSETPERSIST again after water cleared it.
func setPersist(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ierr error
	if err := rc.Control(func(fd uintptr) { ierr = unix.IoctlSetInt(int(fd), unix.TUNSETPERSIST, 1) }); err != nil {
		return err
	}
	return ierr
}

// bringUp sets IFF_UP on dev.
func bringUp(dev string) error {
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket for ioctl: %w", err)
	}
	defer unix.Close(s)
	ifr, err := unix.NewIfreq(dev)
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(s, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("SIOCGIFFLAGS: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(s, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("SIOCSIFFLAGS: %w", err)
	}
	return nil
}
