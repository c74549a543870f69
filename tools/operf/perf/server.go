package perf

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// RunSummary is a run as the server saw it.
type RunSummary struct {
	Hello Hello
	// Received is what the server counted of the client's packets.
	Received Stats
	// Sent is what the server sent (both ways).
	Sent uint64
	// Complete says the client closed the run with an end message;
	// otherwise the flow ended or a new run started first.
	Complete bool
}

// session is one run on the server side.
type session struct {
	hello   Hello
	counter *Counter
	sent    atomic.Uint64
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	final   []byte // the final report, once the end arrived
}

// server serves the runs of one conn, one at a time.
type server struct {
	conn  net.Conn
	onRun func(RunSummary)
	cur   *session
}

// Serve answers the runs a client opens on conn, one after the other,
// until conn ends (io.EOF is a clean end) or ctx is done. onRun, if not
// nil, is called as each run ends.
func Serve(ctx context.Context, conn net.Conn, onRun func(RunSummary)) error {
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Now()) })
	defer stop()
	s := &server{conn: conn, onRun: onRun}
	defer s.abandon(time.Now())
	rd := newPacketReader(conn)
	for {
		p, err := rd.next()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		n := len(p)
		if n == 0 {
			continue
		}
		now := time.Now()
		switch p[0] {
		case TypeData:
			if seq, sent, err := ParseData(p); err == nil && s.cur != nil {
				s.cur.counter.Add(seq, n, now.Sub(sent))
			}
		case TypeHello:
			h, err := ParseHello(p)
			if err != nil {
				continue
			}
			if s.cur == nil || s.cur.hello.Run != h.Run {
				s.abandon(now)
				s.start(h, now)
			}
			if err := s.write(Ack{Run: h.Run}.Marshal()); err != nil {
				return err
			}
		case TypeEnd:
			e, err := ParseEnd(p)
			if err != nil || s.cur == nil || s.cur.hello.Run != e.Run {
				continue
			}
			if s.cur.final == nil {
				s.finish(e, now)
			}
			if err := s.write(s.cur.final); err != nil {
				return err
			}
		}
	}
}

// write sends one control packet; a write the flow blocks for long is
// given up, not fatal (the client repeats its request).
func (s *server) write(b []byte) error {
	s.conn.SetWriteDeadline(time.Now().Add(time.Second))
	_, err := s.conn.Write(b)
	s.conn.SetWriteDeadline(time.Time{})
	if err != nil && !isTimeout(err) {
		return err
	}
	return nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// start opens a run: interval reports and, both ways, a sender.
func (s *server) start(h Hello, now time.Time) {
	if h.Interval <= 0 {
		h.Interval = time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	sess := &session{hello: h, counter: NewCounter(now), cancel: cancel}
	s.cur = sess
	sess.wg.Add(1)
	go func() {
		defer sess.wg.Done()
		s.report(ctx, sess)
	}()
	if h.Both && h.Size >= HeaderSize && h.Size <= 65535 && h.Duration > 0 {
		sess.wg.Add(1)
		go func() {
			defer sess.wg.Done()
			s.send(ctx, sess)
		}()
	}
}

// stop ends a session's goroutines, unblocking their writes.
func (s *server) stop(sess *session) {
	sess.cancel()
	s.conn.SetWriteDeadline(time.Now())
	sess.wg.Wait()
	s.conn.SetWriteDeadline(time.Time{})
}

// finish closes the current run on the client's end message.
func (s *server) finish(e End, now time.Time) {
	sess := s.cur
	s.stop(sess)
	_, total := sess.counter.Finish(e.Sent, now)
	r := Report{Run: sess.hello.Run, Final: true, Total: total, Sent: sess.sent.Load()}
	sess.final = r.Marshal()
	if s.onRun != nil {
		st := StatsOf(total)
		st.Sent, st.SentBytes = e.Sent, e.Sent*uint64(sess.hello.Size)
		s.onRun(RunSummary{Hello: sess.hello, Received: st, Sent: sess.sent.Load(), Complete: true})
	}
}

// abandon drops the current run if it never finished.
func (s *server) abandon(now time.Time) {
	sess := s.cur
	if sess == nil {
		return
	}
	s.cur = nil
	if sess.final != nil {
		return
	}
	s.stop(sess)
	if s.onRun != nil {
		s.onRun(RunSummary{Hello: sess.hello, Received: StatsOf(sess.counter.Total(now)), Sent: sess.sent.Load()})
	}
}

// report sends an interval report every interval until ctx ends.
func (s *server) report(ctx context.Context, sess *session) {
	tick := time.NewTicker(sess.hello.Interval)
	defer tick.Stop()
	for index := uint32(1); ; index++ {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			r := Report{Run: sess.hello.Run, Index: index, Total: sess.counter.Total(now)}
			if _, err := s.conn.Write(r.Marshal()); err != nil && !isTimeout(err) {
				return
			}
		}
	}
}

// send is the server's half of a run both ways: data to the client at
// the client's size and rate, for the client's duration.
func (s *server) send(ctx context.Context, sess *session) {
	h := sess.hello
	pump(ctx, s.conn, h.Size, h.Rate, h.Duration, nil, &sess.sent)
}

// packetReader hands out the packets of conn one at a time, reading them
// in batches when conn is a BatchConn.
type packetReader struct {
	conn  net.Conn
	bc    BatchConn
	bufs  [][]byte
	sizes []int
	n, i  int
}

func newPacketReader(conn net.Conn) *packetReader {
	r := &packetReader{conn: conn}
	r.bc, _ = conn.(BatchConn)
	k := 1
	if r.bc != nil {
		k = batchLen
	}
	r.bufs, r.sizes = make([][]byte, k), make([]int, k)
	for i := range r.bufs {
		r.bufs[i] = make([]byte, 65536)
	}
	return r
}

// next returns the next packet, valid until the following call; a
// packet that was truncated comes back empty.
func (r *packetReader) next() ([]byte, error) {
	for r.i >= r.n {
		r.i = 0
		if r.bc != nil {
			n, err := r.bc.ReadBatch(r.bufs, r.sizes)
			if err != nil {
				return nil, err
			}
			r.n = n
			continue
		}
		n, err := r.conn.Read(r.bufs[0])
		if err != nil {
			return nil, err
		}
		r.sizes[0], r.n = n, 1
	}
	p := r.bufs[r.i][:max(r.sizes[r.i], 0)]
	r.i++
	return p, nil
}
