package pipe

import (
	"bytes"
	"net"
	"os"
	"testing"
	"time"
)

// udpPair returns two data-socket pipes connected over loopback UDP.
func udpPair(t *testing.T) (*Pipe, *Pipe) {
	t.Helper()
	ua, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	ub, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	// Connected sockets: dial from the listener's address after closing it.
	aAddr, bAddr := ua.LocalAddr().(*net.UDPAddr), ub.LocalAddr().(*net.UDPAddr)
	ua.Close()
	ub.Close()
	ca, err := net.DialUDP("udp4", aAddr, bAddr)
	if err != nil {
		t.Fatal(err)
	}
	cb, err := net.DialUDP("udp4", bAddr, aAddr)
	if err != nil {
		t.Fatal(err)
	}
	file := func(c *net.UDPConn) *os.File {
		f, err := c.File()
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	pa, err := NewDatagram(file(ca))
	if err != nil {
		t.Fatal(err)
	}
	pb, err := NewDatagram(file(cb))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		pa.Close()
		pb.Close()
	})
	return pa, pb
}

// TestDatagramSegmented: a batch with runs of equal records goes out in
// segmented sends, and the reader gets every record whole, in order,
// with its kind.
func TestDatagramSegmented(t *testing.T) {
	pa, pb := udpPair(t)
	var bufs [][]byte
	var kinds []Kind
	add := func(n, size int, k Kind) {
		for i := 0; i < n; i++ {
			b := make([]byte, size)
			for j := range b {
				b[j] = byte(len(bufs)*31 + j)
			}
			bufs = append(bufs, b)
			kinds = append(kinds, k)
		}
	}
	add(50, 1400, Data) // a run
	add(1, 700, Data)   // ends it
	add(3, 60, Data)    // another run
	add(1, 1400, DataCE)
	add(100, 1000, Data) // longer than one segmented send
	type rec struct {
		b []byte
		k Kind
	}
	recs := make(chan rec, len(bufs))
	errc := make(chan error, 1)
	go func() {
		rb := make([][]byte, MaxBatch)
		for i := range rb {
			rb[i] = make([]byte, 2000)
		}
		sizes := make([]int, MaxBatch)
		rk := make([]Kind, MaxBatch)
		pb.SetReadDeadline(time.Now().Add(5 * time.Second))
		for got := 0; got < len(bufs); {
			m, err := pb.ReadBatch(rb, sizes, rk)
			if err != nil {
				errc <- err
				return
			}
			for i := 0; i < m; i++ {
				recs <- rec{append([]byte(nil), rb[i][:max(sizes[i], 0)]...), rk[i]}
				got++
			}
		}
		errc <- nil
	}()
	// In pieces the receive buffer holds (a datagram socket drops the
	// rest; nothing here is about loss).
	for off := 0; off < len(bufs); off += 40 {
		end := min(off+40, len(bufs))
		n, err := pa.WriteBatchKinds(bufs[off:end], kinds[off:end])
		if err != nil || n != end-off {
			t.Fatalf("wrote %d of %d: %v", n, end-off, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if pa.gso.sent == 0 {
		t.Fatal("no segmented send")
	}
	t.Logf("%d records in %d segmented sends", len(bufs), pa.gso.sent)
	if err := <-errc; err != nil {
		t.Fatalf("read: %v", err)
	}
	for i, w := range bufs {
		r := <-recs
		if !bytes.Equal(r.b, w) || r.k != kinds[i] {
			t.Fatalf("record %d: %d bytes kind %v, want %d kind %v", i, len(r.b), r.k, len(w), kinds[i])
		}
	}
}

func TestGSORun(t *testing.T) {
	mk := func(sizes ...int) [][]byte {
		var b [][]byte
		for _, s := range sizes {
			b = append(b, make([]byte, s))
		}
		return b
	}
	for _, c := range []struct {
		sizes []int
		want  int
	}{
		{[]int{100}, 0},
		{[]int{100, 100, 100}, 3},
		{[]int{100, 100, 50, 100}, 3},
		{[]int{100, 200}, 1},
		{[]int{0, 0}, 0},
		{[]int{100, 0}, 1},
		{[]int{30000, 30000, 30000}, 2},
	} {
		if got := gsoRun(mk(c.sizes...)); got != c.want {
			t.Errorf("gsoRun(%v) = %d, want %d", c.sizes, got, c.want)
		}
	}
	long := make([]int, 100)
	for i := range long {
		long[i] = 10
	}
	if got := gsoRun(mk(long...)); got != gsoMax {
		t.Errorf("100 records: run %d, want %d", got, gsoMax)
	}
}
