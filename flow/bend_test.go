package flow

import (
	"bytes"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/ouro-net/ouro/dt"
	"github.com/ouro-net/ouro/flow/frct"
	"github.com/ouro-net/ouro/lib/ctrl"
	"github.com/ouro-net/ouro/lib/pipe"
	"github.com/ouro-net/ouro/lib/qos"
)

// TestLabelRangeMatchesLayer: the flow library picks labels the
// unicast layer accepts.
func TestLabelRangeMatchesLayer(t *testing.T) {
	if frct.MaxLabel != dt.MaxLabel {
		t.Fatalf("frct.MaxLabel %d, dt.MaxLabel %d", frct.MaxLabel, dt.MaxLabel)
	}
}

// TestReliableFlowBendsUnderMarks: a reliable flow whose every packet
// the layer marks (sustained congestion) tells its IPCP to move it: the
// relay playing the IPCPs sees pipe.Bend records from the sender, each
// one byte with a label in range, as many as the sender's Bends, the
// last one its current label; the data arrives whole, and the flow
// never reports DOWN.
func TestReliableFlowBendsUnderMarks(t *testing.T) {
	pa, ia, err := pipe.Pair()
	if err != nil {
		t.Fatal(err)
	}
	pb, ib, err := pipe.Pair()
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var bends [][]byte
	relay := func(from, to *pipe.Pipe, mark bool, done chan<- struct{}) {
		defer close(done)
		buf := make([]byte, 70000)
		for {
			n, k, err := from.Read(buf)
			if err != nil {
				to.Close()
				return
			}
			switch {
			case k == pipe.Bend:
				mu.Lock()
				bends = append(bends, append([]byte(nil), buf[:n]...))
				mu.Unlock()
				continue // the IPCP's, not the peer's
			case k == pipe.Data && mark:
				k = pipe.DataCE
			}
			to.WriteKind(k, buf[:n])
		}
	}
	ab, ba := make(chan struct{}), make(chan struct{})
	go relay(ia, ib, true, ab)
	go relay(ib, ia, false, ba)
	fi := ctrl.FlowInfo{ID: 1, Name: "bend", QoS: qos.Reliable(), MTU: 1400, Layer: "test"}
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
	msg := bytes.Repeat([]byte{7}, 1000)
	const count = 2000
	done := readN(b, count*len(msg))
	for range count {
		if _, err := a.Write(msg); err != nil {
			t.Fatal(err)
		}
		if a.State() != Up {
			t.Fatal("the sender reported DOWN")
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
	sa := a.Reliability()
	mu.Lock()
	defer mu.Unlock()
	t.Logf("sender: %d bends (held %d, errors %d), label %d, ECN cuts %d; relay saw %d bend records", sa.Bends, sa.BendsHeld, sa.BendErrors, sa.Label, sa.ECNCuts, len(bends))
	if sa.Bends == 0 {
		t.Fatal("the sender never bent under sustained marks")
	}
	if uint64(len(bends)) != sa.Bends || sa.BendErrors != 0 {
		t.Fatalf("relay saw %d bend records, sender counted %d (errors %d)", len(bends), sa.Bends, sa.BendErrors)
	}
	for i, r := range bends {
		if len(r) != 1 || r[0] > dt.MaxLabel {
			t.Fatalf("bend record %d: %v", i, r)
		}
	}
	if last := bends[len(bends)-1][0]; last != sa.Label {
		t.Fatalf("last bend record label %d, sender's label %d", last, sa.Label)
	}
	if a.State() != Up || b.State() != Up {
		t.Fatal("a flow reported DOWN")
	}
}
