package flow

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/ouro-net/ouro/lib/ctrl"
	"github.com/ouro-net/ouro/lib/pipe"
	"github.com/ouro-net/ouro/lib/qos"
)

// markingPair returns two flows of QoS q joined by a relay that plays
// their IPCPs: what a writes reaches b as DataCE records when mark is
// true (a layer that marked every packet on the way), what b writes
// reaches a as Data. The relay ends when both flows are closed.
func markingPair(t *testing.T, q qos.Spec, mark bool) (*Flow, *Flow) {
	t.Helper()
	pa, ia, err := pipe.Pair()
	if err != nil {
		t.Fatal(err)
	}
	pb, ib, err := pipe.Pair()
	if err != nil {
		t.Fatal(err)
	}
	relay := func(from, to *pipe.Pipe, as pipe.Kind, done chan<- struct{}) {
		defer close(done)
		buf := make([]byte, 70000)
		for {
			n, k, err := from.Read(buf)
			if err != nil {
				to.Close()
				return
			}
			if k == pipe.Data {
				k = as
			}
			to.WriteKind(k, buf[:n])
		}
	}
	ab, ba := make(chan struct{}), make(chan struct{})
	kind := pipe.Data
	if mark {
		kind = pipe.DataCE
	}
	go relay(ia, ib, kind, ab)
	go relay(ib, ia, pipe.Data, ba)
	fi := ctrl.FlowInfo{ID: 1, Name: "ce", QoS: q, MTU: 1400, Layer: "test"}
	a, err := newFlow(fi, pa)
	if err != nil {
		t.Fatal(err)
	}
	b, err := newFlow(fi, pb)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		a.closeRaw()
		b.closeRaw()
		<-ab
		<-ba
		ia.Close()
		ib.Close()
	})
	return a, b
}

// TestRawFlowCountsMarks: a raw flow has no congestion control, but
// the marked packets it receives are counted, by Read and ReadBatch
// alike; unmarked ones are not.
func TestRawFlowCountsMarks(t *testing.T) {
	for _, mark := range []bool{false, true} {
		a, b := markingPair(t, qos.Raw(), mark)
		for i := range 6 {
			if _, err := a.Write([]byte{byte(i)}); err != nil {
				t.Fatal(err)
			}
		}
		buf := make([]byte, 100)
		got := 0
		for got < 3 {
			if _, err := b.Read(buf); err != nil {
				t.Fatal(err)
			}
			got++
		}
		bufs := [][]byte{make([]byte, 100), make([]byte, 100), make([]byte, 100)}
		sizes := make([]int, 3)
		for got < 6 {
			n, err := b.ReadBatch(bufs, sizes)
			if err != nil {
				t.Fatal(err)
			}
			got += n
		}
		want := uint64(0)
		if mark {
			want = 6
		}
		if ce := b.CEReceived(); ce != want {
			t.Errorf("mark %v: CEReceived = %d, want %d", mark, ce, want)
		}
		if ce := a.CEReceived(); ce != 0 {
			t.Errorf("mark %v: the sender counted %d marks", mark, ce)
		}
	}
}

// TestFRCTEchoesMarks: on a reliable flow whose packets the layer marks,
// the receiving FRCT sees the marks (its lower is an frct.ECNLower) and
// echoes them: the sender counts echoed packets and cuts its window for
// them. Without marks it sees none. Data arrives whole either way.
func TestFRCTEchoesMarks(t *testing.T) {
	for _, mark := range []bool{false, true} {
		a, b := markingPair(t, qos.Reliable(), mark)
		msg := bytes.Repeat([]byte{7}, 1000)
		const count = 300
		done := readN(b, count*len(msg))
		for range count {
			if _, err := a.Write(msg); err != nil {
				t.Fatal(err)
			}
		}
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, io.EOF) {
				t.Fatal(err)
			}
		case <-time.After(60 * time.Second):
			t.Fatal("the receiver did not get the data within a minute")
		}
		sa, sb := a.Reliability(), b.Reliability()
		// The last ACKs may still be on their way: wait for the echo,
		// bounded, without asserting how long it takes.
		for deadline := time.Now().Add(10 * time.Second); mark && sa.ECNEchoed == 0 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			sa = a.Reliability()
		}
		if mark {
			if sb.CEReceived == 0 || b.CEReceived() == 0 {
				t.Errorf("receiver saw no marks: FRCT %d, flow %d", sb.CEReceived, b.CEReceived())
			}
			if sa.ECNEchoed == 0 || sa.ECNCuts == 0 {
				t.Errorf("sender: %d packets echoed, %d ECN cuts; want both > 0", sa.ECNEchoed, sa.ECNCuts)
			}
		} else if sb.CEReceived != 0 || sa.ECNEchoed != 0 || sa.ECNCuts != 0 {
			t.Errorf("no marks sent, yet CE %d, echoed %d, cuts %d", sb.CEReceived, sa.ECNEchoed, sa.ECNCuts)
		}
	}
}

// readN reads from r in the background until n bytes have arrived and
// sends nil, or the read error, on the returned channel.
func readN(r io.Reader, n int) <-chan error {
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 2000)
		for total := 0; total < n; {
			k, err := r.Read(buf)
			if err != nil {
				done <- err
				return
			}
			total += k
		}
		done <- nil
	}()
	return done
}
