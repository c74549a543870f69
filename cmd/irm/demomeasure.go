package main

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// reply is one echo the demo's pinger got back: its sequence number,
// when it was sent and when it came back (since the stream started).
type reply struct {
	seq        uint64
	sent, recv time.Duration
}

// replyLog is the pinger's per-reply output (ping.Config.Out): it
// records each reply's sequence number and, from its round trip, when
// it was sent. One Write is one line.
type replyLog struct {
	start   time.Time
	mu      sync.Mutex
	replies []reply
}

func (l *replyLog) Write(p []byte) (int, error) {
	now := time.Since(l.start)
	line := string(p)
	if i := strings.Index(line, "seq="); i >= 0 {
		var seq uint64
		var rttMS float64
		if _, err := fmt.Sscanf(line[i:], "seq=%d time=%f ms", &seq, &rttMS); err == nil {
			rtt := time.Duration(rttMS * float64(time.Millisecond))
			l.mu.Lock()
			l.replies = append(l.replies, reply{seq: seq, sent: now - rtt, recv: now})
			l.mu.Unlock()
		}
	}
	return len(p), nil
}

func (l *replyLog) get() []reply {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]reply(nil), l.replies...)
}

// demoMeasure is what the demo measured of the stream around the cut.
// Probes are placed in time by the replies around them: a lost probe
// between two replies sent before the cut was lost before it, one
// between two replies sent after the restore was lost after it, and
// every other one while the link was down (the edges included).
type demoMeasure struct {
	SentBefore, LostBefore    int // probes before the cut, and lost of those
	SentDown, DeliveredDown   int // probes sent while the link was down (losses at its edges included), and echoed
	LostDown                  int // probes lost around the cut: while down and at its edges
	DeliveredAfter, LostAfter int // probes after the restore: echoed, lost
	// Interruption is the longest time without a reply while the link
	// was down (from the last reply before a gap to the first after it,
	// for gaps that end after the cut and start before the restore).
	Interruption time.Duration
}

func (m demoMeasure) String() string {
	return fmt.Sprintf("before the cut %d sent, %d lost; while down %d sent, %d echoed, %d lost around the cut; "+
		"after the restore %d echoed, %d lost; interruption %.1f ms",
		m.SentBefore, m.LostBefore, m.SentDown, m.DeliveredDown, m.LostDown, m.DeliveredAfter, m.LostAfter, ms(m.Interruption))
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// measure places replies and lost probes around the cut at cutAt and the
// restore at restoreAt (times since the stream started).
func measure(replies []reply, lost []uint64, cutAt, restoreAt time.Duration) demoMeasure {
	var m demoMeasure
	for _, r := range replies {
		switch {
		case r.sent < cutAt:
			m.SentBefore++
		case r.sent < restoreAt:
			m.DeliveredDown++
		default:
			m.DeliveredAfter++
		}
	}
	byRecv := slices.SortedFunc(slices.Values(replies), func(a, b reply) int { return cmp.Compare(a.recv, b.recv) })
	prev, after := time.Duration(-1), false
	for _, r := range byRecv {
		if prev >= 0 && r.recv >= cutAt && prev < restoreAt {
			m.Interruption = max(m.Interruption, r.recv-prev)
		}
		after = after || r.recv >= cutAt
		prev = r.recv
	}
	if !after && prev >= 0 {
		m.Interruption = restoreAt - prev // nothing came back after the cut
	}
	bySeq := slices.SortedFunc(slices.Values(replies), func(a, b reply) int { return cmp.Compare(a.seq, b.seq) })
	for _, s := range lost {
		i, _ := slices.BinarySearchFunc(bySeq, s, func(r reply, s uint64) int { return cmp.Compare(r.seq, s) })
		switch {
		case i < len(bySeq) && bySeq[i].sent < cutAt:
			m.SentBefore++
			m.LostBefore++
		case i > 0 && bySeq[i-1].sent >= restoreAt:
			m.LostAfter++
		default:
			m.LostDown++
		}
	}
	m.SentDown = m.DeliveredDown + m.LostDown
	return m
}

// verdict says why the stream did not survive the cut, or "" if it
// did: something sent while the link was down must have come back (over
// the other side), the interruption at the cut must be at most maxGap,
// little may be lost before the cut (5%), and the stream must
// carry on after the restore.
func (m demoMeasure) verdict(maxGap time.Duration) string {
	switch {
	case m.DeliveredDown == 0:
		return "nothing sent while the link was down came back"
	case m.Interruption > maxGap:
		return fmt.Sprintf("the interruption at the cut was %.1f ms, more than %v", ms(m.Interruption), maxGap)
	case m.LostBefore*20 > m.SentBefore:
		return fmt.Sprintf("%d of %d probes lost before the cut", m.LostBefore, m.SentBefore)
	case m.DeliveredAfter == 0:
		return "nothing came back after the restore"
	}
	return ""
}
