package shim

import (
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/ouro-net/ouro/ipcpd/shim/admit"
)

// Counters count what the engine and its link saw and did. They only
// grow. The link counts its frames, bytes and receive drops here too,
// so that one set of names serves every shim kind.
type Counters struct {
	FramesIn, BytesIn atomic.Uint64 // every frame received
	RxData            atomic.Uint64 // data packets handed to applications
	TxData, TxBytes   atomic.Uint64 // data packets (and their frames' bytes) sent

	// Dropped on receive, by reason.
	Short         atomic.Uint64 // shorter than its headers
	BadVersion    atomic.Uint64 // management message of another version
	BadType       atomic.Uint64 // unknown management type
	Malformed     atomic.Uint64 // management message of the wrong layout
	UnknownEID    atomic.Uint64 // data for no flow of ours
	WrongPeer     atomic.Uint64 // data for a flow, from another address
	Unsolicited   atomic.Uint64 // query answers nobody asked for
	LateReplies   atomic.Uint64 // alloc responses for no pending allocation
	StaleDeallocs atomic.Uint64 // deallocs for no flow of ours
	StaleAcks     atomic.Uint64 // dealloc acks for no flow of ours
	StaleConfirms atomic.Uint64 // confirmations for no unconfirmed flow of ours
	Undeliverable atomic.Uint64 // the application did not take the packet
	RxErrors      atomic.Uint64 // the medium failed a read
	TxErrors      atomic.Uint64 // the medium refused a frame
	TooBig        atomic.Uint64 // application packet over the flow MTU

	// Management.
	QueriesIn, QueriesAnswered, QueriesLimited, QueriesOut atomic.Uint64
	AllocsIn, AllocsRefused, AllocsOut, AllocsFailed       atomic.Uint64
	AllocsTimedOut                                         atomic.Uint64 // the peer vanished mid-allocation
	AllocsRestarted                                        atomic.Uint64 // requests for a confirmed flow (a restarted requester): the old flow ended
	DeallocsIn, DeallocsOut, DeallocsUnacked               atomic.Uint64
	CarrierChanges                                         atomic.Uint64

	// Limits (see the package documentation).
	Refused            admit.Refused // incoming flows refused, by cap
	AllocsLimited      atomic.Uint64 // refusal or late-reply dealloc not sent: answer budget
	AnswersLimited     atomic.Uint64 // dealloc ack not sent: answer budget
	ArrivalsTimedOut   atomic.Uint64 // the IRMd found no acceptor in time
	ExpiredUnconfirmed atomic.Uint64 // incoming flows ended: never confirmed
	ConfirmsIn         atomic.Uint64 // incoming flows confirmed
	ConfirmsOut        atomic.Uint64 // confirmations sent
}

// Counter is one named counter, for show.
type Counter struct {
	Name string
	V    *atomic.Uint64
}

// List names every counter, in the order show prints them.
func (c *Counters) List() []Counter {
	return []Counter{
		{"rx-datagrams", &c.FramesIn}, {"rx-bytes", &c.BytesIn}, {"rx-data", &c.RxData},
		{"tx-data", &c.TxData}, {"tx-bytes", &c.TxBytes},
		{"drop-truncated", &c.Short}, {"drop-bad-version", &c.BadVersion}, {"drop-bad-type", &c.BadType},
		{"drop-malformed", &c.Malformed}, {"drop-unknown-eid", &c.UnknownEID}, {"drop-wrong-source", &c.WrongPeer},
		{"drop-unsolicited", &c.Unsolicited}, {"drop-stale-reply", &c.LateReplies},
		{"drop-stale-dealloc", &c.StaleDeallocs}, {"drop-stale-ack", &c.StaleAcks},
		{"drop-stale-confirm", &c.StaleConfirms}, {"drop-undeliverable", &c.Undeliverable},
		{"drop-too-big", &c.TooBig}, {"rx-errors", &c.RxErrors}, {"tx-errors", &c.TxErrors},
		{"queries-in", &c.QueriesIn}, {"queries-answered", &c.QueriesAnswered},
		{"queries-rate-limited", &c.QueriesLimited}, {"queries-out", &c.QueriesOut},
		{"allocs-in", &c.AllocsIn}, {"allocs-refused", &c.AllocsRefused}, {"allocs-out", &c.AllocsOut},
		{"allocs-failed", &c.AllocsFailed}, {"allocs-timed-out", &c.AllocsTimedOut},
		{"allocs-restarted-peer", &c.AllocsRestarted},
		{"deallocs-in", &c.DeallocsIn}, {"deallocs-out", &c.DeallocsOut}, {"deallocs-unacked", &c.DeallocsUnacked},
		{"carrier-changes", &c.CarrierChanges},
		{"refused-flows-full", &c.Refused.Flows}, {"refused-peer-flows-full", &c.Refused.PeerFlows},
		{"refused-pending-full", &c.Refused.Pending}, {"refused-peer-pending-full", &c.Refused.PeerPending},
		{"drop-alloc-rate-limited", &c.AllocsLimited}, {"drop-stale-rate-limited", &c.AnswersLimited},
		{"arrivals-timed-out", &c.ArrivalsTimedOut}, {"expired-unconfirmed", &c.ExpiredUnconfirmed},
		{"confirms-in", &c.ConfirmsIn}, {"confirms-out", &c.ConfirmsOut},
	}
}

// String renders the counters that are not zero, for logs.
func (c *Counters) String() string {
	var b strings.Builder
	for _, x := range c.List() {
		if v := x.V.Load(); v != 0 {
			if b.Len() > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%s %d", x.Name, v)
		}
	}
	return b.String()
}
