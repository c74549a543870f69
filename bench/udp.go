package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"
)

// rcvBuf is the receive buffer of every raw UDP socket of the baseline.
const rcvBuf = 4 << 20

// peerConn makes an unconnected UDP socket a net.Conn that answers
// whoever sent the last packet: the echo and sink ends of the raw
// baseline, so that they run the same ping and perf code as the flows.
type peerConn struct {
	*net.UDPConn
	mu   sync.Mutex
	peer netip.AddrPort
}

// Read reads one datagram and remembers its sender.
func (c *peerConn) Read(b []byte) (int, error) {
	n, from, err := c.UDPConn.ReadFromUDPAddrPort(b)
	if err == nil {
		c.mu.Lock()
		c.peer = from
		c.mu.Unlock()
	}
	return n, err
}

// Write sends one datagram to the last sender.
func (c *peerConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	peer := c.peer
	c.mu.Unlock()
	if !peer.IsValid() {
		return 0, errors.New("no peer yet")
	}
	return c.UDPConn.WriteToUDPAddrPort(b, peer)
}

// setBuffers gives a UDP socket rcvBuf bytes of receive and send
// buffer: forced past net.core.rmem_max when allowed (root), else as
// much as the limit grants. It returns the receive buffer the kernel
// reports (which counts its bookkeeping: about twice the request).
func setBuffers(c *net.UDPConn) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, fmt.Errorf("udp socket: %w", err)
	}
	got := 0
	var serr error
	err = rc.Control(func(fd uintptr) {
		for _, o := range [][2]int{{syscall.SO_RCVBUFFORCE, syscall.SO_RCVBUF}, {syscall.SO_SNDBUFFORCE, syscall.SO_SNDBUF}} {
			if syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, o[0], rcvBuf) != nil {
				syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, o[1], rcvBuf)
			}
		}
		got, serr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF)
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return 0, fmt.Errorf("udp socket buffers: %w", err)
	}
	return got, nil
}

// dialUDP returns a connected UDP socket to addr with the baseline's
// buffers.
func dialUDP(addr string) (*net.UDPConn, error) {
	ra, err := net.ResolveUDPAddr("udp4", addr)
	if err != nil {
		return nil, err
	}
	c, err := net.DialUDP("udp4", nil, ra)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	if _, err := setBuffers(c); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}
