package routing

import (
	"slices"
	"time"
)

// Stats are the router's counters.
type Stats struct {
	// MessagesSent and LSUsSent count messages handed to Send and the
	// LSUs in them (floods, syncs and replies).
	MessagesSent, LSUsSent uint64
	// MessagesReceived counts messages given to Receive, LSUsReceived
	// the LSUs decoded from them.
	MessagesReceived, LSUsReceived uint64
	// LSUsAccepted counts received LSUs newer than the stored one.
	LSUsAccepted uint64
	// LSUsStale counts received LSUs older than the stored one or
	// already at MaxAge.
	LSUsStale uint64
	// LSUsDuplicate counts received LSUs with the stored sequence number.
	LSUsDuplicate uint64
	// Malformed counts received messages that failed to decode.
	Malformed uint64
	// EncodeErrors counts outgoing messages that failed to encode (a bug).
	EncodeErrors uint64
	// Originated counts own LSUs issued (adjacency changes and refreshes).
	Originated uint64
	// Withdrawals counts own LSUs issued because an adjacency went down.
	Withdrawals uint64
	// OwnNewer counts copies of this router's own LSU that were newer
	// than its own (a restart, or a forgery) and made it re-originate.
	OwnNewer uint64
	// Flushes counts own LSUs flushed at MaxSeq; Restarts counts the
	// restarts at sequence number 1 that followed.
	Flushes, Restarts uint64
	// Purged counts others' LSUs removed by a flush.
	Purged uint64
	// LSUsRefused counts LSUs refused because the database is at its
	// bounds (Config.MaxOrigins, Config.MaxLinks).
	LSUsRefused uint64
	// Syncs counts database syncs sent to neighbours coming up.
	Syncs uint64
	// AgedOut counts members removed after MaxAge without refresh.
	AgedOut uint64
	// SPFRuns counts SPF runs; LastSPF is the clock time of the last.
	SPFRuns uint64
	LastSPF time.Time
	// SPFTime is how long the SPF runs took together (building the
	// graph and solving it), LastSPFTime how long the last one took.
	// They are measured on the real monotonic clock, not Config.Clock:
	// they are CPU work, which virtual time does not see.
	SPFTime, LastSPFTime time.Duration
}

// noteSPF counts one SPF run at clock time now that began at the real
// time start; r.mu held.
func (s *Stats) noteSPF(now, start time.Time) {
	took := time.Since(start)
	s.SPFRuns++
	s.LastSPF = now
	s.SPFTime += took
	s.LastSPFTime = took
}

// Stats returns a snapshot of the counters.
func (r *Router) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

// Member is one origin in the link-state database.
type Member struct {
	// Addr is the member's address.
	Addr uint64
	// Seq is the sequence number of its newest LSU.
	Seq uint64
	// Age is how long ago that LSU was issued.
	Age time.Duration
	// Links are the adjacencies it announces, sorted by neighbour.
	Links []Link
}

// Members returns every member in the database, this router included,
// sorted by address (for `irm layer show`).
func (r *Router) Members() []Member {
	r.mu.Lock()
	defer r.mu.Unlock()
	all := r.db.all(r.cfg.Clock.Now())
	out := make([]Member, len(all))
	for i, l := range all {
		out[i] = Member{Addr: l.Origin, Seq: l.Seq, Age: l.Age, Links: slices.Clone(l.Links)}
	}
	return out
}
