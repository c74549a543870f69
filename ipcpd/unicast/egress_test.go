package unicast_test

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/ouro-net/ouro/ipcpd/unicast"
)

// TestEgressServesByCube: behind a lower flow whose far end stopped
// reading, a best-effort flood queues in the adjacency's scheduler; a
// few low-latency packets sent after it leave ahead of the flood's
// backlog, a few bulk packets sent last still get their guaranteed
// turns before the flood is through, and a management frame sent last
// leaves ahead of them all, behind only the channel's short queue.
// Nothing is lost.
func TestEgressServesByCube(t *testing.T) {
	loop, _, peer, _ := forwardLoopOverLocal(t)
	const size = 1000
	const (
		cubeBE, cubeLL, cubeBulk = 0, 1, 2
		tagLL, tagBulk, tagMgmt  = 0xf000, 0xf100, 0xf200
	)
	be := 0
	for ; !loop.Queueing(); be++ {
		if be > 400 {
			t.Fatalf("no queueing after %d unread packets", be)
		}
		loop.ForwardTagged(size, cubeBE, uint16(be))
	}
	// The backlog: well beyond what the channel takes (about 55).
	for range 200 {
		loop.ForwardTagged(size, cubeBE, uint16(be))
		be++
	}
	for i := range 5 {
		loop.ForwardTagged(size, cubeLL, tagLL+uint16(i))
	}
	for i := range 5 {
		loop.ForwardTagged(size, cubeBulk, tagBulk+uint16(i))
	}
	// The channel is full: the management frame is queued ahead of the
	// data backlog (were it written into the channel, it would wait for
	// room: hence its own goroutine).
	mgmt := make(chan error, 1)
	go func() {
		frame := make([]byte, 40)
		frame[0] = 5 // an acknowledgement
		binary.BigEndian.PutUint16(frame[len(frame)-2:], tagMgmt)
		mgmt <- loop.WriteMgmt(frame)
	}()
	var mgmtErr error
	mgmtDone := false
	select {
	case mgmtErr = <-mgmt:
		mgmtDone = true
	case <-time.After(2 * time.Second):
		// Blocked on the full channel: the check below will say so.
	}
	total := be + 5 + 5 + 1
	buf := make([]byte, 4096)
	beSeen := 0
	var llAt, bulkAt []int
	mgmtAt := -1
	for i := range total {
		n, err := peer.Read(buf)
		if err != nil {
			t.Fatalf("packet %d of %d: %v", i, total, err)
		}
		tag := binary.BigEndian.Uint16(buf[n-2 : n])
		switch {
		case tag == tagMgmt && buf[0] == 5:
			mgmtAt = beSeen
		case tag >= tagLL && tag < tagLL+5:
			if unicast.PacketCube(buf[:n]) != cubeLL {
				t.Fatalf("low-latency packet arrived with cube %d", unicast.PacketCube(buf[:n]))
			}
			llAt = append(llAt, beSeen)
		case tag >= tagBulk && tag < tagBulk+5:
			bulkAt = append(bulkAt, beSeen)
		default:
			if int(tag) != beSeen {
				t.Fatalf("best-effort packet %d arrived as number %d: the flood was reordered", tag, beSeen)
			}
			beSeen++
		}
	}
	if !mgmtDone {
		mgmtErr = <-mgmt
	}
	if mgmtErr != nil {
		t.Fatalf("management frame: %v", mgmtErr)
	}
	t.Logf("%d best-effort packets; low latency after %v of them, bulk after %v, management after %d", be, llAt, bulkAt, mgmtAt)
	// FIFO would put every low-latency packet after all be of them.
	for _, at := range llAt {
		if at > be/2 {
			t.Fatalf("low-latency packet left after %d of the %d best-effort packets queued before it", at, be)
		}
	}
	if len(llAt) != 5 || len(bulkAt) != 5 {
		t.Fatalf("arrived %d low-latency and %d bulk packets, want 5 each", len(llAt), len(bulkAt))
	}
	// Bulk is served last but keeps a share: it does not wait for the
	// whole flood.
	if bulkAt[4] >= be {
		t.Fatalf("bulk packets waited for the whole flood (after %v of %d)", bulkAt, be)
	}
	// Sent after the others, it may follow what the drainer had moved
	// into the lower flow's short FIFO by then (under load the drainer
	// can run ahead of the sending goroutine by a batch and that FIFO,
	// so no tighter bound holds); FIFO service would put it after all be.
	if mgmtAt < 0 || mgmtAt > be/2 {
		t.Fatalf("management frame arrived after %d of %d best-effort packets", mgmtAt, be)
	}
	if d := loop.EgressDrops(); d != 0 {
		t.Fatalf("%d packets dropped at the egress", d)
	}
}
