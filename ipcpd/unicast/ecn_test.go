package unicast_test

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"

	"context"

	"github.com/ouro-net/ouro/flow"
	"github.com/ouro-net/ouro/flow/frct"
	"github.com/ouro-net/ouro/internal/testenv"
	"github.com/ouro-net/ouro/ipcpd/unicast"
	"github.com/ouro-net/ouro/lib/pipe"
	"github.com/ouro-net/ouro/lib/qos"
)

// forwardLoopOverLocal builds a ForwardLoop whose adjacency is a real
// lower flow of a local layer (the two ends share the channel, so what
// the far end does not read stays queued) and whose endpoint is a pipe;
// it returns the far end of the lower flow and the endpoint's
// application end.
func forwardLoopOverLocal(t *testing.T) (*unicast.ForwardLoop, *flow.Flow, *flow.Flow, *pipe.Pipe) {
	t.Helper()
	h := testenv.StartHost(t)
	h.Bootstrap(t, "local", "lo", "lo", nil)
	h.Register(t, "lower", "lo")
	l, err := flow.Listen("lower", h.Opt())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lower, err := flow.Alloc(ctx, "lower", qos.Raw(), h.Opt())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lower.Close() })
	peer, err := l.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Close() })
	epIPCP, epApp, err := pipe.Pair()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { epIPCP.Close(); epApp.Close() })
	loop, err := unicast.NewForwardLoop(lower, epIPCP)
	if err != nil {
		t.Fatal(err)
	}
	// Nothing below may block the test for ever.
	lower.SetWriteDeadline(time.Now().Add(30 * time.Second))
	epIPCP.SetWriteDeadline(time.Now().Add(30 * time.Second))
	return loop, lower, peer, epApp
}

// TestEgressMarksWhenQueued: packets that leave while the lower flow's
// send queue is short go straight out, unmarked; once the far end stops
// reading and the queue passes the threshold, the egress queues in its
// scheduler (egress.go) and the packets queued there leave with their
// ECN field raised, and counted. The reader's buffer does not keep the
// mark; once everything drained the next packet goes out unmarked.
func TestEgressMarksWhenQueued(t *testing.T) {
	loop, _, peer, _ := forwardLoopOverLocal(t)
	const size = 1000
	sent := 0
	for ; !loop.Queueing(); sent++ {
		if sent > 400 {
			t.Fatalf("no queueing after %d unread packets", sent)
		}
		if e := loop.ForwardSized(size); e != 0 {
			t.Fatalf("packet %d: the reader's buffer kept ECN %d", sent, e)
		}
	}
	// The channel under the scheduler takes about 128 KiB (some 55
	// packets of this size) before its writer blocks; after that every
	// packet waits in the scheduler behind another.
	const more, last = 90, 20
	for range more {
		loop.ForwardSized(size)
	}
	sent += more
	buf := make([]byte, 4096)
	marked := 0
	for i := range sent {
		n, err := peer.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		e := unicast.PacketECN(buf[:n])
		if i == 0 && e != 0 {
			t.Fatalf("the first packet, sent to an empty queue, is marked %d", e)
		}
		if i >= sent-last && e == 0 {
			t.Fatalf("packet %d of %d, queued behind a full channel, is not marked", i, sent)
		}
		if e != 0 {
			marked++
		}
	}
	if got := loop.Marked(); got != uint64(marked) || marked < last {
		t.Fatalf("counted %d marked, %d arrived marked (want at least %d)", got, marked, last)
	}
	// The queue drained: once the egress is back on its fast path the
	// next packet goes out unmarked.
	for deadline := time.Now().Add(10 * time.Second); loop.Queueing(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the egress still queues after everything was read")
		}
	}
	loop.ForwardSized(size)
	if n, err := peer.Read(buf); err != nil || unicast.PacketECN(buf[:n]) != 0 {
		t.Fatalf("a packet sent to a drained queue: %v, ECN %d", err, unicast.PacketECN(buf[:n]))
	}
}

// TestDeliveryKeepsMark: a packet addressed to a local endpoint reaches
// its application as a DataCE record when some hop marked it and as
// Data otherwise, batched or not.
func TestDeliveryKeepsMark(t *testing.T) {
	loop, _, _, app := forwardLoopOverLocal(t)
	buf := make([]byte, 4096)
	for _, batched := range []bool{true, false} {
		for _, ecn := range []uint8{0, 1, 200} {
			loop.DeliverECN(ecn, batched)
			_, k, err := app.Read(buf)
			if err != nil {
				t.Fatal(err)
			}
			want := pipe.DataCE
			if ecn == 0 {
				want = pipe.Data
			}
			if k != want {
				t.Fatalf("batched %v, ECN %d: delivered as %v, want %v", batched, ecn, k, want)
			}
		}
	}
}

// pipeLower is the application's side of an endpoint as FRCT's lower:
// DataCE records report CE (what the flow library's lower does; see
// flow's TestFRCTEchoesMarks).
type pipeLower struct{ p *pipe.Pipe }

func (l pipeLower) ReadPacket(b []byte) (int, error) {
	n, _, err := l.ReadPacketECN(b)
	return n, err
}

func (l pipeLower) ReadPacketECN(b []byte) (int, bool, error) {
	for {
		n, k, err := l.p.Read(b)
		if errors.Is(err, io.ErrShortBuffer) {
			return n, false, err
		}
		if err != nil {
			return 0, false, io.EOF
		}
		switch k {
		case pipe.Data:
			return n, false, nil
		case pipe.DataCE:
			return n, true, nil
		case pipe.Dealloc:
			return 0, false, io.EOF
		}
	}
}

func (l pipeLower) WritePacket(b []byte) error { return l.p.Write(b) }
func (l pipeLower) MTU() int                   { return 1400 }
func (l pipeLower) Close() error               { return l.p.Close() }

// TestCongestedEgressReachesFRCTSender is ECN end to end through the
// forwarding code: member 1 sends a raw flood and a reliable flow to
// member 2 over one lower flow that member 2 reads slowly (a slow
// link). Member 1's egress queue fills, so the reliable flow's packets
// leave marked; member 2 delivers them as DataCE; the receiving FRCT
// echoes the marks and the sending FRCT counts them and cuts its
// window. Every message arrives whole and in order. Nothing about how
// long it takes is asserted (the bounds only stop a hang).
func TestCongestedEgressReachesFRCTSender(t *testing.T) {
	_, lower, peer, _ := forwardLoopOverLocal(t)
	path := unicast.NewECNPath(lower, peer, 2*time.Millisecond, 4)
	floodA, floodB, err := path.Connect(100)
	if err != nil {
		t.Fatal(err)
	}
	relA, relB, err := path.Connect(200)
	if err != nil {
		t.Fatal(err)
	}
	var snd, rcv *frct.Conn
	t.Cleanup(func() {
		floodA.Close()
		floodB.Close()
		relA.Close() // the connections fail at once: no linger
		relB.Close()
		if snd != nil {
			snd.Close()
		}
		if rcv != nil {
			rcv.Close()
		}
		lower.Close()
		peer.Close()
		path.Wait()
	})
	go func() { // the flood's sink reads all it gets
		buf := make([]byte, 2048)
		for {
			if _, _, err := floodB.Read(buf); err != nil {
				return
			}
		}
	}()
	go func() { // the flood: as fast as member 1 takes it
		pkt := make([]byte, 1000)
		for floodA.Write(pkt) == nil {
		}
	}()
	cfg := frct.Config{Reliable: true, InOrder: true}
	if snd, err = frct.New(pipeLower{relA}, cfg); err != nil {
		t.Fatal(err)
	}
	if rcv, err = frct.New(pipeLower{relB}, cfg); err != nil {
		t.Fatal(err)
	}
	const count, size = 40, 1000
	go func() {
		for i := range count {
			if _, err := snd.Write(bytes.Repeat([]byte{byte(i)}, size)); err != nil {
				return
			}
		}
	}()
	rcv.SetReadDeadline(time.Now().Add(2 * time.Minute))
	buf := make([]byte, size)
	for i := range count {
		if _, err := io.ReadFull(rcv, buf); err != nil {
			t.Fatalf("message %d: %v (sender %+v)", i, err, snd.Stats())
		}
		if !bytes.Equal(buf, bytes.Repeat([]byte{byte(i)}, size)) {
			t.Fatalf("message %d arrived damaged or out of order", i)
		}
	}
	st := snd.Stats()
	for deadline := time.Now().Add(30 * time.Second); st.ECNEchoed == 0 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		st = snd.Stats()
	}
	rs := rcv.Stats()
	t.Logf("egress marked %d packets; receiver CE %d; sender echoed %d, ECN cuts %d, cwnd %d",
		path.Marked(), rs.CEReceived, st.ECNEchoed, st.ECNCuts, st.Cwnd)
	if path.Marked() == 0 {
		t.Fatal("member 1's egress marked nothing")
	}
	if rs.CEReceived == 0 {
		t.Fatal("the receiving FRCT saw no CE")
	}
	if st.ECNEchoed == 0 || st.ECNCuts == 0 {
		t.Fatalf("the sending FRCT saw %d echoed packets and made %d ECN cuts; want both > 0", st.ECNEchoed, st.ECNCuts)
	}
}
