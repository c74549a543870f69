package perf

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"time"
)

// pump writes data packets of size bytes to conn, paced at rate
// packets/s (0: as fast as conn takes them), for d, or until ctx is
// done or stop is closed. It counts the packets written in sent and
// returns how long it sent. A write that times out (the flow pushed
// back past a deadline) drops that packet and carries on; any other
// write error ends the pump with that error.
func pump(ctx context.Context, conn net.Conn, size int, rate float64, d time.Duration,
	stop <-chan struct{}, sent *atomic.Uint64) (time.Duration, error) {
	buf := make([]byte, size)
	start := time.Now()
	end := start.Add(d)
	pacer := NewPacer(rate, start)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var seq uint64
	for {
		now := time.Now()
		if !now.Before(end) {
			return now.Sub(start), nil
		}
		n, wait := pacer.Due(now)
		if n == 0 {
			timer.Reset(min(wait, end.Sub(now)))
			select {
			case <-timer.C:
				continue
			case <-ctx.Done():
				return time.Since(start), nil
			case <-stop:
				return time.Since(start), nil
			}
		}
		for i := 0; i < n; i++ {
			PutData(buf, seq, time.Now())
			if _, err := conn.Write(buf); err != nil {
				if isTimeout(err) {
					continue
				}
				return time.Since(start), fmt.Errorf("flow failed: %w", err)
			}
			seq++
			sent.Store(seq)
		}
		pacer.Sent(n)
		select {
		case <-ctx.Done():
			return time.Since(start), nil
		case <-stop:
			return time.Since(start), nil
		default:
		}
	}
}
