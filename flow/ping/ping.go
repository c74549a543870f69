// Package ping implements the oping echo protocol over flows and its
// statistics, shared by tools/oping, the irm demo and the bench harness.
//
// A probe is [type:1][seq:8][sent unix ns:8] followed by padding up to
// the requested size; the server echoes it with the type flipped.
package ping

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/ouro-net/ouro/flow"
)

// HeaderSize is the smallest probe.
const HeaderSize = 17

const (
	typeRequest = 1
	typeReply   = 2
)

// Config is what a ping client does.
type Config struct {
	Name     string
	QoS      flow.QoS
	Count    int           // 0: until Duration or cancelled
	Interval time.Duration // 0: back to back
	Flood    bool          // next probe when the reply arrives
	Size     int
	Duration time.Duration // 0: no limit
	// Wait is how long to wait for replies after the last probe
	// (default: 10 intervals, at least 200 ms, at most 2 s).
	Wait time.Duration
	// Out receives one line per reply unless nil.
	Out  io.Writer
	Opts []flow.Option
}

// Stats summarises a run.
type Stats struct {
	Name        string        `json:"name"`
	Transmitted int           `json:"transmitted"`
	Received    int           `json:"received"`
	LossPct     float64       `json:"loss_pct"`
	Elapsed     time.Duration `json:"-"`
	ElapsedMS   float64       `json:"time_ms"`
	MinMS       float64       `json:"rtt_min_ms"`
	AvgMS       float64       `json:"rtt_avg_ms"`
	MaxMS       float64       `json:"rtt_max_ms"`
	MdevMS      float64       `json:"rtt_mdev_ms"`
	MedianMS    float64       `json:"rtt_median_ms"`
	P99MS       float64       `json:"rtt_p99_ms"`
	// LongestGapMS is the longest time between two consecutive replies
	// while probes were outstanding: the interruption a failover caused.
	LongestGapMS float64 `json:"longest_gap_ms"`
	Downs        int     `json:"down_events"`
	Error        string  `json:"error,omitempty"`
	// Lost lists the sequence numbers that got no reply.
	Lost []uint64 `json:"-"`
	rtts []time.Duration
}

// Summary renders the two closing lines as the C oping does.
func (s *Stats) Summary() string {
	loss := fmt.Sprintf("%.0f", s.LossPct)
	if s.LossPct != float64(int(s.LossPct)) {
		loss = fmt.Sprintf("%.3g", s.LossPct)
	}
	out := fmt.Sprintf("--- %s ping statistics ---\n%d packets transmitted, %d received, %s%% packet loss, time: %.3f ms\n",
		s.Name, s.Transmitted, s.Received, loss, s.ElapsedMS)
	if s.Received > 0 {
		out += fmt.Sprintf("rtt min/avg/max/mdev = %.3f/%.3f/%.3f/%.3f ms\n", s.MinMS, s.AvgMS, s.MaxMS, s.MdevMS)
	}
	return out
}

// RTTs returns every round trip measured.
func (s *Stats) RTTs() []time.Duration { return s.rtts }

// Run allocates a flow and pings over it. A flow that cannot be
// allocated is an error; a flow that fails mid-run ends the run with
// Stats.Error set and the error returned.
func Run(ctx context.Context, cfg Config) (*Stats, error) {
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	f, err := flow.Alloc(actx, cfg.Name, cfg.QoS, cfg.Opts...)
	cancel()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return RunOn(ctx, f, cfg)
}

// RunOn pings over an allocated flow.
func RunOn(ctx context.Context, f net.Conn, cfg Config) (*Stats, error) {
	if cfg.Size < HeaderSize {
		cfg.Size = HeaderSize
	}
	if cfg.Count == 0 && cfg.Duration == 0 && ctx.Done() == nil {
		return nil, errors.New("ping: no count, duration or context to end the run")
	}
	wait := cfg.Wait
	if wait == 0 {
		wait = min(max(10*cfg.Interval, 200*time.Millisecond), 2*time.Second)
	}
	r := &run{
		cfg: cfg, f: f, wait: wait, st: &Stats{Name: cfg.Name},
		received: make(map[uint64]bool),
		replyCh:  make(chan struct{}, 1),
		readErr:  make(chan error, 1),
	}
	start := time.Now()
	go r.readReplies()
	seq, runErr := r.send(ctx)
	if runErr == nil {
		runErr = r.collect()
	}
	// Unblock the reader; it ends with a deadline error nobody reads.
	f.SetReadDeadline(time.Now())
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.st
	st.Elapsed = time.Since(start)
	for i := uint64(0); i < seq; i++ {
		if !r.received[i] {
			st.Lost = append(st.Lost, i)
		}
	}
	st.compute()
	if runErr != nil && !errors.Is(runErr, os.ErrDeadlineExceeded) {
		st.Error = runErr.Error()
		return st, runErr
	}
	return st, nil
}

// run is one ping run: the sender (RunOn's goroutine) and the reply
// reader share the statistics under mu.
type run struct {
	cfg  Config
	f    net.Conn
	wait time.Duration // how long a flood waits for a reply, and the least quiet period at the end

	mu        sync.Mutex
	st        *Stats
	received  map[uint64]bool
	lastReply time.Time // of the last reply, or of the first probe
	sentAny   bool

	replyCh chan struct{} // a reply arrived (coalesced)
	readErr chan error    // the reader's end
}

// readReplies reads replies until the flow fails or its read deadline
// passes, recording each new one.
func (r *run) readReplies() {
	buf := make([]byte, max(r.cfg.Size, 65536))
	for {
		n, err := r.f.Read(buf)
		if err != nil {
			r.readErr <- err
			return
		}
		now := time.Now()
		if n < HeaderSize || buf[0] != typeReply {
			continue
		}
		seq := binary.BigEndian.Uint64(buf[1:9])
		rtt := now.Sub(time.Unix(0, int64(binary.BigEndian.Uint64(buf[9:17]))))
		if !r.record(seq, rtt, now) {
			continue
		}
		if r.cfg.Out != nil {
			fmt.Fprintf(r.cfg.Out, "%d bytes from %s: seq=%d time=%.3f ms\n", n, r.cfg.Name, seq, float64(rtt)/1e6)
		}
		select {
		case r.replyCh <- struct{}{}:
		default:
		}
	}
}

// record counts the reply to seq, unless it is a duplicate, and tracks
// the longest gap between replies.
func (r *run) record(seq uint64, rtt time.Duration, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.received[seq] {
		return false
	}
	r.received[seq] = true
	st := r.st
	st.Received++
	st.rtts = append(st.rtts, rtt)
	if !r.lastReply.IsZero() {
		if g := now.Sub(r.lastReply); float64(g)/1e6 > st.LongestGapMS {
			st.LongestGapMS = float64(g) / 1e6
		}
	}
	r.lastReply = now
	return true
}

// send sends the probes, paced by the interval, by the replies (flood)
// or back to back, until the count, the duration or the context ends
// the run or the flow fails. It returns the number of probes sent and
// the flow's error, if any.
func (r *run) send(ctx context.Context) (uint64, error) {
	cfg := r.cfg
	probe := make([]byte, cfg.Size)
	probe[0] = typeRequest
	var deadline <-chan time.Time
	if cfg.Duration > 0 {
		t := time.NewTimer(cfg.Duration)
		defer t.Stop()
		deadline = t.C
	}
	var tick <-chan time.Time
	if cfg.Interval > 0 && !cfg.Flood {
		t := time.NewTicker(cfg.Interval)
		defer t.Stop()
		tick = t.C
	}
	seq := uint64(0)
	for cfg.Count == 0 || int(seq) < cfg.Count {
		binary.BigEndian.PutUint64(probe[1:9], seq)
		binary.BigEndian.PutUint64(probe[9:17], uint64(time.Now().UnixNano()))
		if _, err := r.f.Write(probe); err != nil {
			return seq, err
		}
		r.mu.Lock()
		r.st.Transmitted++
		if !r.sentAny {
			r.sentAny = true
			r.lastReply = time.Now()
		}
		r.mu.Unlock()
		seq++
		if cfg.Count != 0 && int(seq) >= cfg.Count {
			break
		}
		// What lets the next probe go: a reply or the wait (flood), the
		// ticker (interval), or nothing (back to back).
		var next <-chan time.Time
		var reply <-chan struct{}
		switch {
		case cfg.Flood:
			next, reply = time.After(r.wait), r.replyCh
		case tick != nil:
			next = tick
		}
		if next == nil {
			select {
			case <-deadline:
				return seq, nil
			case <-ctx.Done():
				return seq, nil
			case err := <-r.readErr:
				return seq, err
			default:
			}
			continue
		}
		select {
		case <-reply:
		case <-next:
		case <-deadline:
			return seq, nil
		case <-ctx.Done():
			return seq, nil
		case err := <-r.readErr:
			return seq, err
		}
	}
	return seq, nil
}

// collect waits for outstanding replies for as long as they keep
// coming: a back-to-back burst queues for longer than any fixed wait.
// The quiet period grows with the round trips measured.
func (r *run) collect() error {
	quiet := func() time.Duration {
		r.mu.Lock()
		defer r.mu.Unlock()
		q := r.wait
		for _, rtt := range r.st.rtts {
			q = max(q, 2*rtt)
		}
		return min(q, 5*time.Second)
	}
	timer := time.NewTimer(quiet())
	defer timer.Stop()
	for {
		r.mu.Lock()
		all := r.st.Received >= r.st.Transmitted
		r.mu.Unlock()
		if all {
			return nil
		}
		select {
		case <-r.replyCh:
			timer.Reset(quiet())
		case <-timer.C:
			return nil
		case err := <-r.readErr:
			return err
		}
	}
}

func (s *Stats) compute() {
	s.ElapsedMS = float64(s.Elapsed) / 1e6
	if s.Transmitted > 0 {
		s.LossPct = 100 * float64(s.Transmitted-s.Received) / float64(s.Transmitted)
		if s.LossPct < 0 {
			s.LossPct = 0
		}
	}
	if len(s.rtts) == 0 {
		return
	}
	sorted := append([]time.Duration(nil), s.rtts...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	var sum, sq float64
	for _, r := range sorted {
		ms := float64(r) / 1e6
		sum += ms
		sq += ms * ms
	}
	n := float64(len(sorted))
	s.MinMS = float64(sorted[0]) / 1e6
	s.MaxMS = float64(sorted[len(sorted)-1]) / 1e6
	s.AvgMS = sum / n
	s.MdevMS = math.Sqrt(math.Max(0, sq/n-s.AvgMS*s.AvgMS))
	s.MedianMS = float64(sorted[len(sorted)/2]) / 1e6
	s.P99MS = float64(sorted[min(len(sorted)-1, int(0.99*n))]) / 1e6
}

// Echo answers probes on one flow until it ends; it returns the number
// of probes echoed. io.EOF (the peer closed) is not an error.
func Echo(f net.Conn) (int, error) {
	buf := make([]byte, 65536)
	n := 0
	for {
		k, err := f.Read(buf)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return n, nil
			}
			return n, err
		}
		if k < HeaderSize || buf[0] != typeRequest {
			continue
		}
		buf[0] = typeReply
		if _, err := f.Write(buf[:k]); err != nil {
			return n, err
		}
		n++
	}
}

// Serve accepts flows on l and echoes each in its own goroutine until
// ctx ends. logf, if not nil, is told of flows coming and going.
func Serve(ctx context.Context, l *flow.Listener, logf func(format string, args ...any)) error {
	return l.Serve(ctx, func(f *flow.Flow) {
		if logf != nil {
			logf("new flow %d (qos %s, layer %s)", f.ID(), f.QoS(), f.Layer())
		}
		n, err := Echo(f)
		if logf == nil {
			return
		}
		if err != nil {
			logf("flow %d ended after %d packets: %v", f.ID(), n, err)
		} else {
			logf("flow %d closed after %d packets", f.ID(), n)
		}
	})
}
