package perf

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// serve runs a server on one end of a net.Pipe (which keeps packet
// boundaries: one Write is one Read) and returns the other end; the
// server stops when the test closes that end.
func serve(t *testing.T, wrap func(net.Conn) net.Conn) (net.Conn, func() []RunSummary) {
	t.Helper()
	a, b := net.Pipe()
	var mu sync.Mutex
	var runs []RunSummary
	done := make(chan error, 1)
	go func() {
		done <- Serve(context.Background(), b, func(s RunSummary) {
			mu.Lock()
			runs = append(runs, s)
			mu.Unlock()
		})
	}()
	var once sync.Once
	stop := func() []RunSummary {
		once.Do(func() {
			a.Close()
			if err := <-done; err != nil {
				t.Errorf("Serve: %v", err)
			}
			b.Close()
		})
		mu.Lock()
		defer mu.Unlock()
		return runs
	}
	if wrap != nil {
		return wrap(a), stop
	}
	return a, stop
}

func sumPackets(ivs []Interval) (fwd, rev uint64) {
	for _, iv := range ivs {
		fwd += iv.Forward.Received
		if iv.Reverse != nil {
			rev += iv.Reverse.Received
		}
	}
	return fwd, rev
}

func TestRunPaced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		conn, stop := serve(t, nil)
		defer stop()
		var live []Interval
		res, err := Run(context.Background(), conn, Config{Name: "x", Size: 100, Rate: 100, Duration: 3 * time.Second,
			OnInterval: func(iv Interval) { live = append(live, iv) }})
		if err != nil {
			t.Fatal(err)
		}
		f := res.Forward
		if f.Sent != 300 || f.Received != 300 || f.Lost != 0 || f.Bytes != 30000 {
			t.Fatalf("forward %+v", f)
		}
		if f.PPS < 99 || f.PPS > 101 {
			t.Errorf("delivered %.1f pkt/s at a rate of 100", f.PPS)
		}
		if len(res.Intervals) < 3 || len(live) != len(res.Intervals) {
			t.Fatalf("%d intervals, %d seen live", len(res.Intervals), len(live))
		}
		if fwd, _ := sumPackets(res.Intervals); fwd != 300 {
			t.Errorf("intervals add up to %d packets, want 300", fwd)
		}
		if iv := res.Intervals[0]; iv.Index != 1 || iv.Forward.Received < 100 || iv.Forward.Received > 101 || iv.EndS != 1 {
			t.Errorf("first interval %+v", iv)
		}
		runs := stop()
		if len(runs) != 1 || !runs[0].Complete || runs[0].Received.Received != 300 {
			t.Fatalf("server saw %+v", runs)
		}
	})
}

func TestRunBothWays(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		conn, stop := serve(t, nil)
		defer stop()
		res, err := Run(context.Background(), conn, Config{Size: 64, Rate: 50, Duration: 2 * time.Second, Both: true})
		if err != nil {
			t.Fatal(err)
		}
		if res.Reverse == nil {
			t.Fatal("no reverse direction")
		}
		if r := *res.Reverse; r.Sent != 100 || r.Received != 100 || r.Lost != 0 {
			t.Fatalf("reverse %+v", r)
		}
		if res.Forward.Received != 100 {
			t.Fatalf("forward %+v", res.Forward)
		}
		if _, rev := sumPackets(res.Intervals); rev != 100 {
			t.Errorf("reverse intervals add up to %d, want 100", rev)
		}
		if runs := stop(); len(runs) != 1 || runs[0].Sent != 100 {
			t.Fatalf("server saw %+v", runs)
		}
	})
}

// lossy drops every tenth data packet written through it.
type lossy struct {
	net.Conn
	n int
}

func (l *lossy) Write(b []byte) (int, error) {
	if len(b) > 0 && b[0] == TypeData {
		l.n++
		if l.n%10 == 0 {
			return len(b), nil
		}
	}
	return l.Conn.Write(b)
}

func TestRunCountsLoss(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		conn, stop := serve(t, func(c net.Conn) net.Conn { return &lossy{Conn: c} })
		defer stop()
		res, err := Run(context.Background(), conn, Config{Size: 64, Rate: 100, Duration: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		f := res.Forward
		if f.Sent != 200 || f.Received != 180 || f.Lost != 20 || f.LossPct != 10 {
			t.Fatalf("forward %+v", f)
		}
		var lost uint64
		for _, iv := range res.Intervals {
			lost += iv.Forward.Lost
		}
		if lost < 19 || lost > 20 {
			t.Errorf("intervals count %d lost, want 20 (or 19 with the last one in flight)", lost)
		}
	})
}

func TestRunNoServer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := net.Pipe()
		defer a.Close()
		go func() { // a sink that never answers
			buf := make([]byte, 65536)
			for {
				if _, err := b.Read(buf); err != nil {
					return
				}
			}
		}()
		_, err := Run(context.Background(), a, Config{Size: 64, Duration: time.Second})
		if !errors.Is(err, ErrNoServer) {
			t.Fatalf("got %v, want ErrNoServer", err)
		}
	})
}

func TestRunServerGoesAway(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := net.Pipe()
		defer a.Close()
		go func() { // answer the hello, then close the flow
			buf := make([]byte, 65536)
			n, _ := b.Read(buf)
			h, _ := ParseHello(buf[:n])
			b.Write(Ack{Run: h.Run}.Marshal())
			time.Sleep(500 * time.Millisecond)
			b.Close()
		}()
		res, err := Run(context.Background(), a, Config{Size: 64, Rate: 10, Duration: 5 * time.Second})
		if err == nil || res == nil || res.Error == "" {
			t.Fatalf("got %+v, %v; want a failed run", res, err)
		}
	})
}

func TestServeSeveralRuns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		conn, stop := serve(t, nil)
		defer stop()
		for i := 0; i < 2; i++ {
			if _, err := Run(context.Background(), conn, Config{Size: 64, Rate: 20, Duration: time.Second}); err != nil {
				t.Fatalf("run %d: %v", i, err)
			}
		}
		runs := stop()
		if len(runs) != 2 || !runs[0].Complete || !runs[1].Complete || runs[1].Received.Received != 20 {
			t.Fatalf("server saw %+v", runs)
		}
	})
}

// Unpaced, on the wall clock: the flood ends on time and nothing sent
// over a lossless conn is missing.
func TestRunFlood(t *testing.T) {
	conn, stop := serve(t, nil)
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := Run(ctx, conn, Config{Size: 1000, Duration: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if f := res.Forward; f.Sent == 0 || f.Received != f.Sent || f.Lost != 0 {
		t.Fatalf("forward %+v", f)
	}
}
