package shim

import (
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/ouro-net/ouro/ipcpd/shim/admit"
)

// Counters count what the engine saw and did, in frames. They only grow.
type Counters struct {
	FramesIn, FramesOut, BytesIn, BytesOut atomic.Uint64

	// Dropped on receive, by reason.
	Short          atomic.Uint64 // shorter than the headers
	Truncated      atomic.Uint64 // length field beyond the frame
	OtherEtherType atomic.Uint64 // not our EtherType (TAP sees everything)
	NotForUs       atomic.Uint64 // unicast to another station
	Own            atomic.Uint64 // our own frame came back
	BadSource      atomic.Uint64 // group address as source
	UnknownEID     atomic.Uint64 // data for no flow of ours
	WrongPeer      atomic.Uint64 // data for a flow, from another station
	BadVersion     atomic.Uint64 // management message of another version
	BadMgmt        atomic.Uint64 // unknown code or malformed
	Undeliverable  atomic.Uint64 // application did not take the packet

	// Management.
	QueriesIn      atomic.Uint64 // queries heard
	QueryReplies   atomic.Uint64 // answers sent
	QueriesLimited atomic.Uint64 // not answered: rate limit
	Unsolicited    atomic.Uint64 // answers nobody asked for
	LateReplies    atomic.Uint64 // allocation replies for no pending allocation
	StaleDeallocs  atomic.Uint64 // deallocations for no flow of ours
	AllocsRefused  atomic.Uint64 // incoming allocations refused
	AllocsTimedOut atomic.Uint64 // outgoing allocations without answer
	CarrierChanges atomic.Uint64
	TxErrors       atomic.Uint64 // the medium refused a frame
	RxErrors       atomic.Uint64 // the medium failed a read
	TooBig         atomic.Uint64 // application packet over the MTU

	// Limits (see the package documentation).
	Refused            admit.Refused // incoming flows refused, by cap
	AllocsLimited      atomic.Uint64 // refusal or late-reply Dealloc not sent: answer rate limit
	ArrivalsTimedOut   atomic.Uint64 // the IRMd found no acceptor in time
	ExpiredUnconfirmed atomic.Uint64 // incoming flows ended: never confirmed
	ConfirmsIn         atomic.Uint64 // incoming flows confirmed
	ConfirmsOut        atomic.Uint64 // Confirms sent
	StaleConfirms      atomic.Uint64 // Confirms for no unconfirmed flow of ours
}

// String renders the counters, naming only those that are not zero
// beyond the frame totals.
func (c *Counters) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "frames in %d (%d B), out %d (%d B)", c.FramesIn.Load(), c.BytesIn.Load(),
		c.FramesOut.Load(), c.BytesOut.Load())
	for _, kv := range []struct {
		name string
		v    *atomic.Uint64
	}{
		{"short", &c.Short}, {"truncated", &c.Truncated}, {"other-ethertype", &c.OtherEtherType},
		{"not-for-us", &c.NotForUs}, {"own", &c.Own}, {"bad-source", &c.BadSource},
		{"unknown-eid", &c.UnknownEID}, {"wrong-peer", &c.WrongPeer}, {"bad-version", &c.BadVersion},
		{"bad-mgmt", &c.BadMgmt}, {"undeliverable", &c.Undeliverable},
		{"queries-in", &c.QueriesIn}, {"query-replies", &c.QueryReplies},
		{"queries-rate-limited", &c.QueriesLimited}, {"unsolicited-replies", &c.Unsolicited},
		{"late-alloc-replies", &c.LateReplies}, {"stale-deallocs", &c.StaleDeallocs},
		{"allocs-refused", &c.AllocsRefused}, {"allocs-timed-out", &c.AllocsTimedOut},
		{"carrier-changes", &c.CarrierChanges}, {"tx-errors", &c.TxErrors}, {"rx-errors", &c.RxErrors},
		{"too-big", &c.TooBig},
		{"refused-flows-full", &c.Refused.Flows}, {"refused-peer-flows-full", &c.Refused.PeerFlows},
		{"refused-pending-full", &c.Refused.Pending}, {"refused-peer-pending-full", &c.Refused.PeerPending},
		{"drop-alloc-rate-limited", &c.AllocsLimited}, {"arrivals-timed-out", &c.ArrivalsTimedOut},
		{"expired-unconfirmed", &c.ExpiredUnconfirmed}, {"confirms-in", &c.ConfirmsIn},
		{"confirms-out", &c.ConfirmsOut}, {"stale-confirms", &c.StaleConfirms},
	} {
		if v := kv.v.Load(); v != 0 {
			fmt.Fprintf(&b, ", %s %d", kv.name, v)
		}
	}
	return b.String()
}
