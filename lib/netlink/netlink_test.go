package netlink_test

import (
	"encoding/binary"
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ouro-net/ouro/internal/testenv"
	"github.com/ouro-net/ouro/lib/netlink"
)

func TestMain(m *testing.M) {
	testenv.MaybeRunIPCP()
	code := m.Run()
	testenv.CleanupBinaries()
	os.Exit(code)
}

// attr builds one rtattr.
func attr(typ uint16, v []byte) []byte {
	b := make([]byte, 4, 4+len(v)+3)
	binary.NativeEndian.PutUint16(b[0:], uint16(4+len(v)))
	binary.NativeEndian.PutUint16(b[2:], typ)
	b = append(b, v...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// linkMsg builds one RTM_NEWLINK/RTM_DELLINK message as the kernel does.
func linkMsg(typ uint16, index int32, flags uint32, attrs ...[]byte) []byte {
	b := make([]byte, 32)
	binary.NativeEndian.PutUint16(b[4:], typ)
	binary.NativeEndian.PutUint32(b[16+4:], uint32(index))
	binary.NativeEndian.PutUint32(b[16+8:], flags)
	for _, a := range attrs {
		b = append(b, a...)
	}
	binary.NativeEndian.PutUint32(b[0:], uint32(len(b)))
	return b
}

func errMsg(code int32) []byte {
	b := make([]byte, 16+4+16)
	binary.NativeEndian.PutUint32(b[0:], uint32(len(b)))
	binary.NativeEndian.PutUint16(b[4:], unix.NLMSG_ERROR)
	binary.NativeEndian.PutUint32(b[16:], uint32(code))
	return b
}

func u32(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }

// ifOperUp is IF_OPER_UP from linux/if.h (RFC 2863 "up").
const ifOperUp = 6

const upFlags = unix.IFF_UP | unix.IFF_LOWER_UP | unix.IFF_RUNNING

func TestParse(t *testing.T) {
	var dgram []byte
	dgram = append(dgram, linkMsg(unix.RTM_NEWLINK, 5, upFlags,
		attr(unix.IFLA_IFNAME, []byte("veth0\x00")), attr(unix.IFLA_MTU, u32(1500)),
		attr(unix.IFLA_OPERSTATE, []byte{ifOperUp}))...)
	// Carrier lost: LOWER_UP and RUNNING cleared, name with odd length.
	dgram = append(dgram, linkMsg(unix.RTM_NEWLINK, 5, unix.IFF_UP, attr(unix.IFLA_IFNAME, []byte("eth\x00")))...)
	dgram = append(dgram, linkMsg(unix.RTM_NEWLINK, 6, unix.IFF_LOWER_UP|unix.IFF_RUNNING)...)
	dgram = append(dgram, linkMsg(unix.RTM_DELLINK, 5, 0)...)
	dgram = append(dgram, errMsg(0)...) // an ACK is no error
	var got []netlink.Link
	if err := netlink.Parse(dgram, func(l netlink.Link) { got = append(got, l) }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 {
		t.Fatalf("got %d links, want 4: %+v", len(got), got)
	}
	if l := got[0]; l.Index != 5 || l.Name != "veth0" || l.MTU != 1500 || l.OperState != ifOperUp || !l.Carrier() {
		t.Errorf("first = %+v (carrier %v)", l, l.Carrier())
	}
	if l := got[1]; l.Name != "eth" || !l.AdminUp() || l.LowerUp() || l.Carrier() {
		t.Errorf("carrier loss = %+v", l)
	}
	if l := got[2]; l.AdminUp() || l.Carrier() {
		t.Errorf("admin down = %+v", l)
	}
	if l := got[3]; !l.Deleted || l.Carrier() {
		t.Errorf("deleted = %+v", l)
	}
	for _, l := range got {
		if l.String() == "" {
			t.Error("empty String")
		}
	}
}

func TestParseErrors(t *testing.T) {
	noop := func(netlink.Link) {}
	err := netlink.Parse(errMsg(-int32(unix.ENODEV)), noop)
	var ee *netlink.ErrnoError
	if !errors.As(err, &ee) || !errors.Is(err, unix.ENODEV) {
		t.Fatalf("NLMSG_ERROR ENODEV: %v", err)
	}
	good := linkMsg(unix.RTM_NEWLINK, 1, upFlags, attr(unix.IFLA_IFNAME, []byte("lo\x00")))
	bad := [][]byte{
		good[:10],                            // short header
		good[:20],                            // length beyond the datagram
		linkMsg(unix.RTM_NEWLINK, 1, 0)[:24], // short ifinfomsg
	}
	short := append([]byte{}, good...)
	short[0] = 20 // message length cuts the ifinfomsg
	bad = append(bad, short)
	badAttr := linkMsg(unix.RTM_NEWLINK, 1, 0, []byte{2, 0, 3, 0}) // attribute length < 4
	bad = append(bad, badAttr)
	for i, b := range bad {
		if err := netlink.Parse(b, noop); !errors.Is(err, netlink.ErrMalformed) {
			t.Errorf("case %d: err %v, want ErrMalformed", i, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(linkMsg(unix.RTM_NEWLINK, 5, upFlags, attr(unix.IFLA_IFNAME, []byte("veth0\x00")), attr(unix.IFLA_MTU, u32(1500))))
	f.Add(linkMsg(unix.RTM_DELLINK, 5, 0))
	f.Add(errMsg(-19))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = netlink.Parse(b, func(l netlink.Link) { _ = l.String() })
	})
}

// TestWatchVeth watches one end of a veth pair while the other end and
// then the end itself go down and up.
func TestWatchVeth(t *testing.T) {
	testenv.RequireRoot(t)
	nsA, nsB := testenv.NetNS(t), testenv.NetNS(t)
	a, b := testenv.Veth(t, nsA, nsB)
	events := make(chan netlink.Link, 16)
	var w *netlink.Watcher
	testenv.InNetNS(t, nsA, func() {
		ifi, err := net.InterfaceByName(a)
		if err != nil {
			t.Error(err)
			return
		}
		w, err = netlink.Watch(ifi.Index, func(l netlink.Link) { events <- l }, func(err error) { t.Errorf("watch: %v", err) })
		if err != nil {
			t.Error(err)
		}
	})
	if w == nil {
		t.FailNow()
	}
	defer w.Close()
	expect := func(carrier bool, what string) {
		t.Helper()
		select {
		case l := <-events:
			if l.Carrier() != carrier {
				t.Fatalf("%s: got %s", what, l)
			}
			t.Logf("%s: %s", what, l)
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: no event", what)
		}
	}
	expect(true, "initial state")
	testenv.LinkSet(t, nsB, b, "down")
	expect(false, "peer down")
	testenv.LinkSet(t, nsB, b, "up")
	expect(true, "peer up")
	testenv.LinkSet(t, nsA, a, "down")
	expect(false, "local down")
	testenv.LinkSet(t, nsA, a, "up")
	expect(true, "local up")
	if l, ok := w.Link(); !ok || l.Name != a {
		t.Errorf("Link() = %+v %v", l, ok)
	}
	testenv.IP(t, "-n", nsA, "link", "del", a)
	expect(false, "deleted")
	if err := w.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
}

func TestWatchBadIndex(t *testing.T) {
	if _, err := netlink.Watch(0, nil, nil); err == nil {
		t.Fatal("index 0 accepted")
	}
}
