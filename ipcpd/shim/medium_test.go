package shim_test

import (
	"bytes"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/ouro-net/ouro/ipcpd/shim"
	"golang.org/x/sys/unix"
)

// mediumPair returns a FileMedium on one end of a datagram socket pair
// (one frame per datagram, as on an AF_PACKET socket) and the other end.
func mediumPair(t *testing.T, flags int) (*shim.FileMedium, *os.File, error) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|flags, 0)
	if err != nil {
		t.Fatal(err)
	}
	peer := os.NewFile(uintptr(fds[1]), "peer")
	t.Cleanup(func() { peer.Close() })
	f := os.NewFile(uintptr(fds[0]), "medium")
	m, err := shim.NewFileMedium(f)
	if err != nil {
		f.Close()
		return nil, peer, err
	}
	t.Cleanup(func() { m.Close() })
	return m, peer, nil
}

// TestFileMedium: frames go both ways whole; Close wakes a reader
// blocked in ReadFrame with os.ErrClosed; a blocking descriptor is
// refused (a raw read on it would hold a processor).
func TestFileMedium(t *testing.T) {
	m, peer, err := mediumPair(t, unix.SOCK_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	out := bytes.Repeat([]byte{0xab}, 1514)
	if err := m.WriteFrame(out); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	if n, err := peer.Read(buf); err != nil || !bytes.Equal(buf[:n], out) {
		t.Fatalf("the peer read %d bytes, %v; want the 1514-byte frame", n, err)
	}
	if _, err := peer.Write(out[:60]); err != nil {
		t.Fatal(err)
	}
	if n, err := m.ReadFrame(buf); err != nil || !bytes.Equal(buf[:n], out[:60]) {
		t.Fatalf("ReadFrame = %d, %v; want the 60-byte frame", n, err)
	}

	done := make(chan error, 1)
	go func() {
		_, err := m.ReadFrame(buf)
		done <- err
	}()
	time.Sleep(20 * time.Millisecond) // let it block (if it returns first, it must still fail)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrClosed) {
			t.Fatalf("ReadFrame after Close: %v, want os.ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not wake ReadFrame")
	}
	if err := m.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := m.WriteFrame(out); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("WriteFrame after Close: %v, want os.ErrClosed", err)
	}

	if _, _, err := mediumPair(t, 0); err == nil {
		t.Fatal("NewFileMedium took a blocking descriptor")
	}
}

// TestFileMediumNoAlloc: a frame written and read costs no allocation.
func TestFileMediumNoAlloc(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under -race")
	}
	m, peer, err := mediumPair(t, unix.SOCK_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	frame, buf := make([]byte, 1514), make([]byte, 2048)
	allocs := testing.AllocsPerRun(200, func() {
		if err := m.WriteFrame(frame); err != nil {
			t.Fatal(err)
		}
		if _, err := peer.Read(buf); err != nil {
			t.Fatal(err)
		}
		if _, err := peer.Write(frame); err != nil {
			t.Fatal(err)
		}
		if _, err := m.ReadFrame(buf); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per frame each way, want 0", allocs)
	}
}
