package routing

import "slices"

// originateLocked issues the router's next LSU from its live links,
// floods it to every neighbour except except (0: none) and schedules
// SPF.
func (r *Router) originateLocked(except uint64) {
	r.issueLocked(except)
	r.scheduleSPFLocked()
}

// issueLocked issues and floods the router's next LSU.
func (r *Router) issueLocked(except uint64) {
	r.seq++
	l := LSU{Origin: r.cfg.Self, Seq: r.seq, Links: slices.Clone(r.links)}
	r.db.setSelf(l, r.cfg.Clock.Now())
	r.stats.Originated++
	r.floodLocked([]LSU{l}, except)
}

// floodLocked queues lsus, as updates, to every live neighbour except
// except.
func (r *Router) floodLocked(lsus []LSU, except uint64) {
	msgs := r.encodeLocked(KindUpdate, lsus)
	for _, k := range r.links {
		if k.Neighbor != except {
			r.queueLocked(k.Neighbor, msgs)
		}
	}
}

// sendLocked queues lsus to neighbour n as messages of the given kind.
func (r *Router) sendLocked(n uint64, kind Kind, lsus []LSU) {
	r.queueLocked(n, r.encodeLocked(kind, lsus))
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

// encodeLocked packs lsus into messages of at most MaxMessage bytes
// (estimated from an upper bound of the msgpack size of each LSU).
func (r *Router) encodeLocked(kind Kind, lsus []LSU) []encoded {
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
		if size > 0 && size+s > r.cfg.MaxMessage {
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
