package testenv

import (
	"net"
	"net/netip"
	"os"
	"strconv"
	"testing"
	"time"
)

// TestCaptureLoFilter: a capture of lo sees each UDP datagram once (the
// frame going out, not coming in), and one for a host sees only that
// host's datagrams; the kernel filter and the reader agree.
func TestCaptureLoFilter(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for an AF_PACKET capture on lo")
	}
	// The kernel filter alone (no check in the reader), and whole.
	all := captureLo(t, false, nil)
	only := captureLo(t, false, []netip.Addr{netip.MustParseAddr("127.0.0.3")})
	whole := CaptureLo(t, netip.MustParseAddr("127.0.0.3"))
	stamp := strconv.Itoa(os.Getpid()) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	send := func(to, marker string) {
		l, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(to)})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		c, err := net.DialUDP("udp4", nil, l.LocalAddr().(*net.UDPAddr))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte(marker)); err != nil {
			t.Fatal(err)
		}
		l.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := l.Read(make([]byte, 100)); err != nil {
			t.Fatal(err)
		}
	}
	to3, to1 := "CAPTURE-TO-3-"+stamp, "CAPTURE-TO-1-"+stamp
	send("127.0.0.3", to3)
	send("127.0.0.1", to1)
	var a3, a1, o3, o1, w3, w1 int
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		a3, a1 = all.Count([]byte(to3)), all.Count([]byte(to1))
		o3, o1 = only.Count([]byte(to3)), only.Count([]byte(to1))
		w3, w1 = whole.Count([]byte(to3)), whole.Count([]byte(to1))
		if a3 > 0 && a1 > 0 && o3 > 0 {
			break
		}
	}
	if a3 != 1 || a1 != 1 {
		t.Errorf("kernel filter of lo: datagram to 127.0.0.3 seen %d times, to 127.0.0.1 %d times; want 1 and 1", a3, a1)
	}
	if o3 != 1 || o1 != 0 {
		t.Errorf("kernel filter of 127.0.0.3: datagram to it seen %d times, to 127.0.0.1 %d times; want 1 and 0", o3, o1)
	}
	if w3 != 1 || w1 != 0 {
		t.Errorf("capture of 127.0.0.3: datagram to it seen %d times, to 127.0.0.1 %d times; want 1 and 0", w3, w1)
	}
}
