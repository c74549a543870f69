package unicast

import (
	"sync"
	"time"
)

// Bounds on what a stranger reaching a bound name can make this IPCP
// hold: incoming lower flows in their opening handshake (each has a
// goroutine and a small buffer until it becomes an adjacency or is
// closed), the size and wait of the opening frame, and enrollment
// attempts per joining IPCP.
const (
	maxHandshakes    = 64
	handshakeMax     = 16 << 10
	handshakeTimeout = 10 * time.Second
	// enrollBurst enrollments per IPCP name within enrollWindow; at
	// most enrollNames names are tracked, beyond which every new name
	// is refused until the window frees some.
	enrollBurst  = 4
	enrollWindow = 10 * time.Second
	enrollNames  = 1024
)

// enrollGate bounds enrollment attempts per joining IPCP. Enrollment
// carries no proof of identity yet, so the neighbour is the name it
// claims: a member that restarts or retries gets enrollBurst answers per
// enrollWindow; a flood under one name gets no more, and one under many
// names is held to enrollNames in the window.
type enrollGate struct {
	mu     sync.Mutex
	recent map[string][]time.Time
}

// allow reports whether name may enroll now, and records the attempt.
func (g *enrollGate) allow(name string, now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.recent == nil {
		g.recent = map[string][]time.Time{}
	}
	cutoff := now.Add(-enrollWindow)
	keep := func(ts []time.Time) []time.Time {
		i := 0
		for i < len(ts) && !ts[i].After(cutoff) {
			i++
		}
		return ts[i:]
	}
	ts := keep(g.recent[name])
	if len(ts) == 0 && len(g.recent) >= enrollNames {
		for n, old := range g.recent {
			if k := keep(old); len(k) == 0 {
				delete(g.recent, n)
			} else {
				g.recent[n] = k
			}
		}
		if len(g.recent) >= enrollNames {
			return false
		}
	}
	if len(ts) >= enrollBurst {
		g.recent[name] = ts
		return false
	}
	g.recent[name] = append(ts, now)
	return true
}

// Answers to refused allocation requests: at most refuseRate a second
// per requesting member (burst refuseRate); beyond that a refused
// request is only counted, so a member flooding requests does not make
// this IPCP spend as much again answering. At most answerMembers
// members are tracked; past that the table starts again.
const (
	refuseRate    = 100
	answerMembers = 4096
)

// answerLimit is a token bucket per member.
type answerLimit struct {
	mu      sync.Mutex
	buckets map[uint64]*answerBucket
}

type answerBucket struct {
	tokens float64
	last   time.Time
}

// allow reports whether member may get one more answer now.
func (l *answerLimit) allow(member uint64, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buckets == nil || len(l.buckets) >= answerMembers {
		l.buckets = map[uint64]*answerBucket{}
	}
	b := l.buckets[member]
	if b == nil {
		b = &answerBucket{tokens: refuseRate, last: now}
		l.buckets[member] = b
	}
	b.tokens = min(refuseRate, b.tokens+now.Sub(b.last).Seconds()*refuseRate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
