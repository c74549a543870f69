package main

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestControlRoundTrip(t *testing.T) {
	for _, m := range []control{
		{Type: msgHello, Session: 0x0102030405060708, Prefix: netip.MustParsePrefix("10.9.0.2/24")},
		{Type: msgHello, Session: 1, Prefix: netip.MustParsePrefix("fd00:9::2/64")},
		{Type: msgWelcome, Prefix: netip.MustParsePrefix("10.9.0.1/24"), MTU: 1466},
		{Type: msgRefuse, Code: refuseConflict, Reason: "address 10.9.0.2 is in use"},
		{Type: msgKeepalive},
	} {
		b := m.encode()
		if !isControl(b) {
			t.Fatalf("%+v: encoded form is not control", m)
		}
		if _, ok := ipDst(b); ok {
			t.Fatalf("%+v: encoded form parses as IP", m)
		}
		got, err := decodeControl(b)
		if err != nil || got != m {
			t.Errorf("round trip of %+v: %+v, %v", m, got, err)
		}
	}
	long := control{Type: msgRefuse, Code: refuseBad, Reason: strings.Repeat("x", 1000)}
	if got, err := decodeControl(long.encode()); err != nil || len(got.Reason) != maxReason {
		t.Errorf("long reason: %d bytes, %v", len(got.Reason), err)
	}
}

func TestControlErrors(t *testing.T) {
	ip := []byte{0x45, 0, 0, 20, 0, 0, 0, 0, 64, 1, 0, 0, 10, 9, 0, 2, 10, 9, 0, 1}
	if _, err := decodeControl(ip); !errors.Is(err, errNotControl) {
		t.Errorf("IP packet: %v", err)
	}
	var ve *versionError
	if _, err := decodeControl([]byte{0, 9, msgHello}); !errors.As(err, &ve) || ve.got != 9 {
		t.Errorf("version 9: %v", err)
	}
	hello := control{Type: msgHello, Session: 7, Prefix: netip.MustParsePrefix("10.9.0.2/24")}.encode()
	bad := [][]byte{
		{0}, {0, 1}, {0, 1, 99},
		hello[:5], hello[:len(hello)-1], append(append([]byte{}, hello...), 0),
		{0, 1, msgHello, 0, 0, 0, 0, 0, 0, 0, 1, 24, 5, 1, 2, 3, 4, 5}, // 5-byte address
		{0, 1, msgHello, 0, 0, 0, 0, 0, 0, 0, 1, 33, 4, 10, 9, 0, 2},   // /33
		{0, 1, msgRefuse, 1, 10, 'a'},                                  // reason longer than the packet
		{0, 1, msgWelcome, 24, 4, 10, 9, 0, 1, 5},                      // short MTU
	}
	for i, b := range bad {
		if _, err := decodeControl(b); !errors.Is(err, errBadControl) {
			t.Errorf("case %d %x: %v, want errBadControl", i, b, err)
		}
	}
}

func TestIPAddrs(t *testing.T) {
	v4 := []byte{0x45, 0, 0, 20, 0, 0, 0, 0, 64, 1, 0, 0, 10, 9, 0, 2, 10, 9, 0, 1}
	if s, ok := ipSrc(v4); !ok || s != netip.MustParseAddr("10.9.0.2") {
		t.Errorf("v4 src %v %v", s, ok)
	}
	if d, ok := ipDst(v4); !ok || d != netip.MustParseAddr("10.9.0.1") {
		t.Errorf("v4 dst %v %v", d, ok)
	}
	v6 := make([]byte, 40)
	v6[0] = 0x60
	src, dst := netip.MustParseAddr("fd00::2"), netip.MustParseAddr("fd00::1")
	copy(v6[8:], src.AsSlice())
	copy(v6[24:], dst.AsSlice())
	if s, ok := ipSrc(v6); !ok || s != src {
		t.Errorf("v6 src %v", s)
	}
	if d, ok := ipDst(v6); !ok || d != dst {
		t.Errorf("v6 dst %v", d)
	}
	for _, b := range [][]byte{nil, v4[:19], v6[:39], {0x55, 1, 2}} {
		if _, ok := ipDst(b); ok {
			t.Errorf("%x parsed as IP", b)
		}
		if _, ok := ipSrc(b); ok {
			t.Errorf("%x parsed as IP", b)
		}
	}
}

func TestLastAddr(t *testing.T) {
	if a := lastAddr(netip.MustParsePrefix("10.9.0.1/24")); a != netip.MustParseAddr("10.9.0.255") {
		t.Errorf("broadcast of 10.9.0.1/24: %v", a)
	}
}

func TestParseArgs(t *testing.T) {
	var errs bytes.Buffer
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-n", "x"}, "--ip ADDR/PREFIX is required"},
		{[]string{"--ip", "10.9.0.1"}, "want ADDR/PREFIX"},
		{[]string{"--ip", "10.9.0.1/24", "-q", "nonsense"}, "nonsense"},
		{[]string{"--ip", "10.9.0.1/24", "--dev", "averyveryverylongname"}, "15 bytes"},
		{[]string{"--ip", "10.9.0.1/24", "--max-clients", "0"}, "max-clients"},
		{[]string{"--ip", "224.0.0.1/24"}, "not a unicast"},
		{[]string{"--ip", "10.9.0.1/24", "extra"}, "unexpected argument"},
		{[]string{"--ip", "10.9.0.2/24", "-k", "srv.pub"}, "add -x"},
	} {
		_, err := parse(tc.args, &errs)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
		}
	}
	c, err := parse([]string{"-l", "-n", "vpn", "--ip", "10.9.0.1/24"}, &errs)
	if err != nil || !c.listen || c.name != "vpn" || c.prefix.String() != "10.9.0.1/24" || c.qos.String() != "raw" {
		t.Errorf("good args: %+v %v", c, err)
	}
	if c, err := parse([]string{"--ip", "10.9.0.1/24", "-x"}, &errs); err != nil || !c.qos.Encrypt {
		t.Errorf("-x: %+v %v", c, err)
	}
}

func FuzzDecodeControl(f *testing.F) {
	f.Add(control{Type: msgHello, Session: 3, Prefix: netip.MustParsePrefix("10.9.0.2/24")}.encode())
	f.Add(control{Type: msgWelcome, Prefix: netip.MustParsePrefix("fd00::1/64"), MTU: 1400}.encode())
	f.Add(control{Type: msgRefuse, Code: 1, Reason: "no"}.encode())
	f.Add(control{Type: msgKeepalive}.encode())
	f.Add([]byte{0x45, 0, 0, 20})
	// An IPv4-mapped address in 16 bytes: once decoded, re-encoded shorter.
	f.Add([]byte{0, 1, 2, 0x30, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeControl(b)
		if err != nil {
			return
		}
		// What decodes re-encodes to the same bytes.
		if got := m.encode(); !bytes.Equal(got, b) {
			t.Fatalf("decode(%x) = %+v encodes to %x", b, m, got)
		}
		ipDst(b)
		ipSrc(b)
	})
}
