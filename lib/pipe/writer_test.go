package pipe

import (
	"bytes"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// writerPair returns a DatagramWriter on a non-blocking UDP socket
// connected to a data-socket Pipe that reads.
func writerPair(t *testing.T) (*DatagramWriter, *Pipe) {
	t.Helper()
	l, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	to := l.LocalAddr().(*net.UDPAddr)
	f, err := l.File()
	l.Close()
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewDatagram(f)
	if err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Connect(fd, &unix.SockaddrInet4{Port: to.Port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	w, err := NewDatagramWriter(fd)
	if err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	t.Cleanup(func() {
		w.Close()
		r.Close()
	})
	return w, r
}

// TestDatagramWriter: every record written arrives whole, in order, as
// Data; after Close writes fail and a second Close is harmless.
func TestDatagramWriter(t *testing.T) {
	w, r := writerPair(t)
	var want [][]byte
	for i := range 100 {
		want = append(want, bytes.Repeat([]byte{byte(i)}, 1+i*13))
	}
	if n, err := w.WriteBatch(want); n != len(want) || err != nil {
		t.Fatalf("WriteBatch = %d, %v; want %d, nil", n, err, len(want))
	}
	r.SetReadDeadline(time.Now().Add(5 * time.Second))
	bufs := make([][]byte, MaxBatch)
	for i := range bufs {
		bufs[i] = make([]byte, 2048)
	}
	sizes, kinds := make([]int, MaxBatch), make([]Kind, MaxBatch)
	for got := 0; got < len(want); {
		n, err := r.ReadBatch(bufs, sizes, kinds)
		if err != nil {
			t.Fatalf("after %d records: %v", got, err)
		}
		for i := 0; i < n; i++ {
			if kinds[i] != Data || !bytes.Equal(bufs[i][:sizes[i]], want[got]) {
				t.Fatalf("record %d: kind %v, %d bytes; want Data, %d bytes", got, kinds[i], sizes[i], len(want[got]))
			}
			got++
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := w.WriteBatch(want[:1]); !errors.Is(err, ErrWriterClosed) {
		t.Fatalf("WriteBatch after Close: %v, want ErrWriterClosed", err)
	}
}

// TestDatagramWriterNeverBlocks: on a blocking descriptor whose peer
// never reads, a batch still ends with an error after its bounded polls
// instead of hanging in sendmmsg: the writer's raw call asks for
// MSG_DONTWAIT itself, whatever the descriptor's mode.
func TestDatagramWriterNeverBlocks(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewDatagramWriter(fds[0])
	if err != nil {
		unix.Close(fds[0])
		unix.Close(fds[1])
		t.Fatal(err)
	}
	defer w.Close()
	defer unix.Close(fds[1]) // first: it ends a write that did block
	recs := make([][]byte, 4096)
	for i := range recs {
		recs[i] = make([]byte, 1024)
	}
	done := make(chan error, 1)
	go func() {
		_, err := w.WriteBatch(recs)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, unix.EAGAIN) {
			t.Fatalf("WriteBatch to a peer that never reads: %v, want EAGAIN", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("WriteBatch on a blocking descriptor still blocked after 10 s")
	}
}

// TestDatagramWriterNotPolled: a writer's descriptor is in none of the
// process's epoll sets (an IPCP's copy of a direct flow's socket must
// not wake it at every packet the application receives), where a
// Pipe's is.
func TestDatagramWriterNotPolled(t *testing.T) {
	w, r := writerPair(t)
	var rfd int
	r.rc.Control(func(fd uintptr) { rfd = int(fd) })
	polled := epollTargets(t)
	if !polled[rfd] {
		t.Fatalf("the reading Pipe's descriptor %d is not in an epoll set %v: the check reads nothing", rfd, polled)
	}
	if polled[w.fd] {
		t.Fatalf("the writer's descriptor %d is in an epoll set", w.fd)
	}
}

// epollTargets returns the descriptors registered in this process's
// epoll instances (the tfd lines of /proc/self/fdinfo).
func epollTargets(t *testing.T) map[int]bool {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	out := make(map[int]bool)
	for _, e := range fds {
		if l, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err != nil || !strings.Contains(l, "eventpoll") {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc/self/fdinfo", e.Name()))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "tfd:" {
				if n, err := strconv.Atoi(f[1]); err == nil {
					out[n] = true
				}
			}
		}
	}
	return out
}
