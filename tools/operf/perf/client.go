package perf

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Config is what a client run does.
type Config struct {
	Name     string        // what the result is called (the flow's name)
	QoS      string        // recorded in the result
	Size     int           // packet size, at least HeaderSize
	Rate     float64       // packets/s; 0: as fast as the flow takes them
	Duration time.Duration // how long to send; required
	Interval time.Duration // report interval (default 1 s)
	Both     bool          // the server sends to the client too
	// Wait bounds each control exchange (hello, end) and how long a
	// write the flow pushes back on may block past the duration
	// (default 2 s).
	Wait time.Duration
	// OnInterval, if set, is called with each interval as its report
	// arrives, from the goroutine reading the flow.
	OnInterval func(Interval)
}

// Errors a client run reports.
var (
	ErrNoServer = errors.New("no answer to hello: is an operf server listening on the name?")
	ErrNoReport = errors.New("no final report from the server")
)

// retry is how often unanswered control messages are repeated.
const retry = 200 * time.Millisecond

// client is the state of one run, shared with its reader goroutine.
type client struct {
	conn net.Conn
	cfg  Config
	run  uint32
	rev  *Counter // both ways: what the server sends us

	dead    chan struct{} // closed when the reader ends
	readErr error         // why it ended; read after dead is closed

	acked     chan struct{}
	ackOnce   sync.Once
	finished  chan struct{}
	finalOnce sync.Once

	mu        sync.Mutex
	intervals []Interval
	final     Report
	last      Report // the latest interval report
}

// Run runs one measurement over conn: hello, data for cfg.Duration,
// end. It returns the result, and an error when the run failed (the
// result then holds what was measured, if anything). Cancelling ctx
// stops sending early; the end exchange still runs, bounded by Wait.
func Run(ctx context.Context, conn net.Conn, cfg Config) (*Result, error) {
	if cfg.Size < HeaderSize {
		return nil, fmt.Errorf("packet size %d is below the %d-byte header", cfg.Size, HeaderSize)
	}
	if cfg.Duration <= 0 {
		return nil, errors.New("a run needs a positive duration")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.Wait <= 0 {
		cfg.Wait = 2 * time.Second
	}
	c := &client{conn: conn, cfg: cfg, run: rand.Uint32(), acked: make(chan struct{}),
		finished: make(chan struct{}), dead: make(chan struct{})}
	start := time.Now()
	if cfg.Both {
		c.rev = NewCounter(start)
	}
	go c.read()
	defer func() {
		conn.SetReadDeadline(time.Now())
		<-c.dead
		conn.SetDeadline(time.Time{})
	}()
	dead := c.dead
	fail := func() error { return fmt.Errorf("flow failed: %w", c.readErr) }

	hello := Hello{Run: c.run, Both: cfg.Both, Size: cfg.Size, Rate: cfg.Rate, Duration: cfg.Duration, Interval: cfg.Interval}
	switch err := c.exchange(ctx, hello.Marshal(), c.acked, dead); {
	case errors.Is(err, errDead):
		return nil, fail()
	case errors.Is(err, os.ErrDeadlineExceeded):
		return nil, ErrNoServer
	case err != nil:
		return nil, err
	}

	res := &Result{Name: cfg.Name, QoS: cfg.QoS, Size: cfg.Size, Rate: cfg.Rate}
	sent, sendTime, sendErr := c.send(ctx, dead)
	res.Duration = sendTime.Seconds()
	res.Forward.Sent, res.Forward.SentBytes = sent, sent*uint64(cfg.Size)
	if sendTime > 0 {
		res.Forward.SendPPS = float64(sent) / sendTime.Seconds()
	}
	if errors.Is(sendErr, errDead) {
		sendErr = fail()
	}
	if sendErr != nil {
		c.fill(res, false)
		res.Error = sendErr.Error()
		return res, sendErr
	}

	end := End{Run: c.run, Sent: sent}
	err := c.exchange(context.WithoutCancel(ctx), end.Marshal(), c.finished, dead)
	switch {
	case errors.Is(err, errDead):
		err = fail()
	case errors.Is(err, os.ErrDeadlineExceeded):
		err = ErrNoReport
	}
	c.fill(res, err == nil)
	if err != nil {
		res.Error = err.Error()
		return res, err
	}
	return res, nil
}

var errDead = errors.New("reader ended")

// exchange sends msg every retry until answered is closed, the reader
// dies (errDead), ctx ends or Wait passes (os.ErrDeadlineExceeded).
func (c *client) exchange(ctx context.Context, msg []byte, answered, dead <-chan struct{}) error {
	deadline := time.NewTimer(c.cfg.Wait)
	defer deadline.Stop()
	tick := time.NewTicker(retry)
	defer tick.Stop()
	for {
		c.conn.SetWriteDeadline(time.Now().Add(c.cfg.Wait))
		if _, err := c.conn.Write(msg); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			return fmt.Errorf("flow failed: %w", err)
		}
		select {
		case <-answered:
			return nil
		case <-dead:
			select {
			case <-answered: // answered just before the flow ended
				return nil
			default:
				return errDead
			}
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return os.ErrDeadlineExceeded
		case <-tick.C:
		}
	}
}

// send writes data packets for the configured duration, paced when a
// rate is set; a failed flow is an error (errDead when the reader saw
// it first).
func (c *client) send(ctx context.Context, dead <-chan struct{}) (uint64, time.Duration, error) {
	c.conn.SetWriteDeadline(time.Now().Add(c.cfg.Duration + c.cfg.Wait))
	var sent atomic.Uint64
	d, err := pump(ctx, c.conn, c.cfg.Size, c.cfg.Rate, c.cfg.Duration, dead, &sent)
	select {
	case <-dead:
		err = errDead
	default:
	}
	return sent.Load(), d, err
}

// read dispatches what the server sends until the flow fails or the
// read deadline passes; then it records why and closes dead.
func (c *client) read() {
	defer close(c.dead)
	buf := make([]byte, 65536)
	for {
		n, err := c.conn.Read(buf)
		if err != nil {
			c.readErr = err
			return
		}
		if n == 0 {
			continue
		}
		now := time.Now()
		p := buf[:n]
		switch p[0] {
		case TypeData:
			if seq, sent, err := ParseData(p); err == nil && c.rev != nil {
				c.rev.Add(seq, n, now.Sub(sent))
			}
		case TypeAck:
			if a, err := ParseAck(p); err == nil && a.Run == c.run {
				c.ackOnce.Do(func() { close(c.acked) })
			}
		case TypeReport:
			r, err := ParseReport(p)
			if err != nil || r.Run != c.run {
				continue
			}
			if r.Final {
				c.finalOnce.Do(func() {
					c.mu.Lock()
					c.final = r
					c.mu.Unlock()
					close(c.finished)
				})
				continue
			}
			c.interval(r, now)
		}
	}
}

// interval records one interval report: the counts since the previous
// report that arrived.
func (c *client) interval(r Report, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r.Index <= c.last.Index {
		return
	}
	var rev *Counts
	if c.rev != nil {
		ri, _ := c.rev.Snapshot(now)
		rev = &ri
	}
	c.addLocked(int(r.Index), r.Total.Sub(c.last.Total), r.Total.Elapsed, rev)
	c.last = r
}

// addLocked records one interval ending at end (server time) and tells
// OnInterval.
func (c *client) addLocked(index int, fwd Counts, end time.Duration, rev *Counts) {
	iv := Interval{Index: index, StartS: (end - fwd.Elapsed).Seconds(), EndS: end.Seconds(), Forward: StatsOf(fwd)}
	if rev != nil {
		s := StatsOf(*rev)
		iv.Reverse = &s
	}
	c.intervals = append(c.intervals, iv)
	if c.cfg.OnInterval != nil {
		c.cfg.OnInterval(iv)
	}
}

// fill completes res from the final report, closing the last part
// interval, or, without one, from the latest interval report.
func (c *client) fill(res *Result, final bool) {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.last
	if final {
		r = c.final
	}
	sent := res.Forward
	res.Forward = StatsOf(r.Total)
	res.Forward.Sent, res.Forward.SentBytes, res.Forward.SendPPS = sent.Sent, sent.SentBytes, sent.SendPPS
	var revLast *Counts
	if c.rev != nil {
		var rev Counts
		if final {
			var ri Counts
			ri, rev = c.rev.Finish(r.Sent, now)
			revLast = &ri
		} else {
			rev = c.rev.Total(now)
		}
		s := StatsOf(rev)
		s.Sent, s.SentBytes = r.Sent, r.Sent*uint64(c.cfg.Size)
		res.Reverse = &s
	}
	if fwd := r.Total.Sub(c.last.Total); final && (fwd.Packets > 0 || fwd.Elapsed >= c.cfg.Interval/10 ||
		revLast != nil && revLast.Packets > 0) {
		c.addLocked(int(c.last.Index)+1, fwd, r.Total.Elapsed, revLast)
	}
	res.Intervals = append([]Interval(nil), c.intervals...)
}
