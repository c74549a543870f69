package flow_test

import (
	"bytes"
	"testing"

	"github.com/ouro-net/ouro/lib/qos"
)

// A reliable flow runs congestion control; a best-effort flow runs it
// only when its QoS asks (qos.Spec.Congestion), and data still flows.
func TestCongestionControlFollowsQoS(t *testing.T) {
	asked := qos.BestEffort()
	asked.Name, asked.Congestion = "best-effort+cc", true
	for _, c := range []struct {
		q    qos.Spec
		want bool
	}{{qos.Reliable(), true}, {qos.BestEffort(), false}, {asked, true}} {
		a, b := pairWith(t, "cc-"+c.q.Name, c.q)
		msg := bytes.Repeat([]byte{1}, 1000)
		if _, err := a.Write(msg); err != nil {
			t.Fatalf("%s: write: %v", c.q.Name, err)
		}
		buf := make([]byte, 2000)
		if n, err := b.Read(buf); err != nil || n != len(msg) {
			t.Fatalf("%s: read %d, %v", c.q.Name, n, err)
		}
		st := a.Reliability()
		if st == nil {
			t.Fatalf("%s: no FRCT", c.q.Name)
		}
		if got := st.Cwnd > 0; got != c.want {
			t.Errorf("%s: congestion control %v (cwnd %d), want %v", c.q.Name, got, st.Cwnd, c.want)
		}
	}
}
