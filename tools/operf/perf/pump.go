package perf

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"time"
)

// BatchConn is a conn that moves several packets per system call, as a
// raw *flow.Flow does; pump and Serve use it when conn has it.
type BatchConn interface {
	ReadBatch(bufs [][]byte, sizes []int) (int, error)
	WriteBatch(bufs [][]byte) (int, error)
}

// batchLen is how many packets one batch call moves.
const batchLen = 32

// pump writes data packets of size bytes to conn, paced at rate
// packets/s (0: as fast as conn takes them), for d, or until ctx is
// done or stop is closed. It counts the packets written in sent and
// returns how long it sent. A write that times out (the flow pushed
// back past a deadline) drops that packet and carries on; any other
// write error ends the pump with that error.
func pump(ctx context.Context, conn net.Conn, size int, rate float64, d time.Duration,
	stop <-chan struct{}, sent *atomic.Uint64) (time.Duration, error) {
	buf := make([]byte, size)
	bc, _ := conn.(BatchConn)
	var batch [][]byte
	if bc != nil {
		batch = make([][]byte, batchLen)
		for i := range batch {
			batch[i] = make([]byte, size)
		}
	}
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
		if bc != nil && n > 1 {
			// One system call for the whole burst.
			n = min(n, len(batch))
			now := time.Now()
			for i := 0; i < n; i++ {
				PutData(batch[i], seq+uint64(i), now)
			}
			w, err := bc.WriteBatch(batch[:n])
			seq += uint64(w)
			sent.Store(seq)
			if err != nil && !isTimeout(err) {
				return time.Since(start), fmt.Errorf("flow failed: %w", err)
			}
			pacer.Sent(n)
			n = 0
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
