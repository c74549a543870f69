package routing

import "slices"

// originateLocked issues the router's next LSU from its live links,
// floods it to every neighbour except except (0: none) and schedules
// SPF.
func (r *Router) originateLocked(except uint64) {
	r.issueLocked(except)
	r.scheduleSPFLocked()
}

// issueLocked issues and floods the router's next LSU. At MaxSeq it
// flushes instead; while a flush waits, nothing is issued (the restart
// issues the current links).
func (r *Router) issueLocked(except uint64) {
	if r.flushing {
		return
	}
	if r.seq >= MaxSeq {
		r.flushLocked()
		return
	}
	r.seq++
	l := LSU{Origin: r.cfg.Self, Seq: r.seq, Links: slices.Clone(r.links)}
	r.db.setSelf(l, r.cfg.Clock.Now())
	r.stats.Originated++
	r.floodLocked([]LSU{l}, except)
}

// floodLocked queues lsus, as updates, to every live neighbour except
// except.
func (r *Router) floodLocked(lsus []LSU, except uint64) {
	limit := r.cfg.MaxMessage
	for _, k := range r.links {
		if k.Neighbor != except {
			limit = min(limit, r.maxMessageTo(k.Neighbor))
		}
	}
	msgs := r.encodeLocked(KindUpdate, lsus, limit)
	for _, k := range r.links {
		if k.Neighbor != except {
			r.queueLocked(k.Neighbor, msgs)
		}
	}
}

// sendLocked queues lsus to neighbour n as messages of the given kind.
func (r *Router) sendLocked(n uint64, kind Kind, lsus []LSU) {
	r.queueLocked(n, r.encodeLocked(kind, lsus, r.maxMessageTo(n)))
}

// maxMessageTo is the largest message to send neighbour n: MaxMessage,
// or less if MaxMessageTo says so.
func (r *Router) maxMessageTo(n uint64) int {
	if r.cfg.MaxMessageTo != nil {
		if m := r.cfg.MaxMessageTo(n); m > 0 {
			return min(m, r.cfg.MaxMessage)
		}
	}
	return r.cfg.MaxMessage
}

// encoded is one message and the number of LSUs in it.
type encoded struct {
	msg  []byte
	lsus int
}

func (r *Router) queueLocked(n uint64, msgs []encoded) {
	for _, m := range msgs {
		r.out = append(r.out, outMsg{to: n, msg: m.msg})
		r.stats.MessagesSent++
		r.stats.LSUsSent += uint64(m.lsus)
	}
}

// encodeLocked packs lsus into messages of at most limit bytes
// (estimated from an upper bound of the msgpack size of each LSU).
func (r *Router) encodeLocked(kind Kind, lsus []LSU, limit int) []encoded {
	var out []encoded
	start, size := 0, 0
	flush := func(end int) {
		if end == start {
			return
		}
		b, err := Encode(Message{Kind: kind, LSUs: lsus[start:end]})
		if err != nil {
			// Only LSUs that passed validation are stored; count and drop.
			r.stats.EncodeErrors++
		} else {
			out = append(out, encoded{msg: b, lsus: end - start})
		}
		start, size = end, 0
	}
	for i := range lsus {
		s := lsuSizeBound(&lsus[i])
		if size > 0 && size+s > limit {
			flush(i)
		}
		size += s
	}
	flush(len(lsus))
	return out
}

// lsuSizeBound is an upper bound of the encoded size of l: array header
// and three uint64s, the link array header, and per link an array
// header, a uint64 and a uint32. The message header adds at most 10.
func lsuSizeBound(l *LSU) int { return 10 + 1 + 3*9 + 5 + len(l.Links)*(1+9+5) }

// flushLocked floods the router's LSU at MaxSeq and MaxAge old, which
// removes that instance from every database, and arms the restart.
// The router keeps its own entry for its own SPF meanwhile.
func (r *Router) flushLocked() {
	if r.flushing || r.closed {
		return
	}
	r.flushing = true
	r.seq = MaxSeq
	r.stats.Flushes++
	r.floodLocked([]LSU{r.flushLSU()}, 0)
	if r.flushTimer == nil {
		r.flushTimer = r.cfg.Clock.AfterFunc(r.cfg.FlushWait, r.restart)
	} else {
		r.flushTimer.Reset(r.cfg.FlushWait)
	}
}

// flushLSU is the router's flush: its LSU at MaxSeq, MaxAge old.
func (r *Router) flushLSU() LSU {
	return LSU{Origin: r.cfg.Self, Seq: MaxSeq, Age: r.cfg.MaxAge}
}

// restart ends a flush: the router originates again from sequence
// number 1.
func (r *Router) restart() {
	r.mu.Lock()
	defer r.unlockApply()
	if r.closed || !r.flushing {
		return
	}
	r.flushing = false
	r.seq = 0
	r.stats.Restarts++
	r.originateLocked(0)
}

// exportLocked returns the database as sent to a neighbour: every live
// LSU and every tombstone, this router's own LSU replaced by its flush
// while a flush waits.
func (r *Router) exportLocked() []LSU {
	all := r.db.list(r.cfg.Clock.Now(), true)
	if r.flushing {
		for i := range all {
			if all[i].Origin == r.cfg.Self {
				all[i] = r.flushLSU()
			}
		}
	}
	return all
}
