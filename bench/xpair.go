package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/ouro-net/ouro/flow/ping"
)

// Paired round trips of the encrypted paths.
//
// An encrypted path's round trip differs from its plain path's by the
// sealing and opening of each probe and reply: four AES-GCM operations
// per round trip, about half a microsecond at 64 bytes and one and a
// half at 1000 bytes on the 2-core development machine, on a ping-pong
// of 10 to 30 microseconds over udp4 on loopback. The plain and the
// encrypted rows are measured one after the other on different
// topologies, and on a shared machine the load moves a round trip by
// more than that from one second to the next. So an -x path measures
// its round trips against its own plain twin: the same topology and
// server, one flow allocated with Encrypt and one without, and the
// probes alternate between the two, one at a time (which goes first
// alternates too), so that neighbouring probes of the two kinds meet
// the same load. Each probe is sent and its reply awaited as ping does
// it (flow/ping: the sender waits for a reader goroutine to hand over
// the reply), in ping's probe format, echoed by the same server. The
// row keeps the encrypted figure and adds the plain one and the ratio
// of the medians.

// pairTimeout is how long a paired probe waits for its reply before it
// counts as lost.
const pairTimeout = 200 * time.Millisecond

// rttPaired fills row's round trips (encrypted) and its plain twin's,
// measured interleaved for d.
func rttPaired(ctx context.Context, t *target, size int, d time.Duration, row *Row) error {
	ctx, cancel := context.WithTimeout(ctx, d+grace)
	defer cancel()
	enc, err := t.Dial(ctx, pingName)
	if err != nil {
		return err
	}
	defer enc.Close()
	plain, err := t.DialPlain(ctx, pingName)
	if err != nil {
		return err
	}
	defer plain.Close()
	rtts, err := pingPair(ctx, [2]net.Conn{enc, plain}, size, d)
	row.RTTMedianMS, row.RTTP99MS, row.RTTSamples = quantileMS(rtts[0], 0.5), quantileMS(rtts[0], 0.99), len(rtts[0])
	row.RTTPlainMedianMS, row.RTTPlainP99MS, row.RTTPlainSamples = quantileMS(rtts[1], 0.5), quantileMS(rtts[1], 0.99), len(rtts[1])
	if row.RTTPlainMedianMS > 0 {
		row.RTTVsPlain = row.RTTMedianMS / row.RTTPlainMedianMS
	}
	if err == nil && (len(rtts[0]) == 0 || len(rtts[1]) == 0) {
		err = fmt.Errorf("no replies (encrypted %d, plain %d)", len(rtts[0]), len(rtts[1]))
	}
	return err
}

// pingPair sends ping probes of size bytes alternately on conns[0] and
// conns[1], one in flight at a time, for d (or until ctx ends), and
// returns the round trips of each. A probe whose reply does not come
// within pairTimeout is lost; a late reply is ignored.
func pingPair(ctx context.Context, conns [2]net.Conn, size int, d time.Duration) ([2][]time.Duration, error) {
	var out [2][]time.Duration
	type reply struct {
		seq uint64
		rtt time.Duration
	}
	var replies [2]chan reply
	var readErr [2]error
	var wg sync.WaitGroup
	for i, c := range conns {
		c.SetReadDeadline(time.Time{}) // a conn used before ends with a passed one
		replies[i] = make(chan reply, 1)
		wg.Add(1)
		go func() { // owned: ends when its conn's deadline passes below
			defer wg.Done()
			buf := make([]byte, max(size, 65536))
			for {
				n, err := c.Read(buf)
				if err != nil {
					readErr[i] = err
					close(replies[i])
					return
				}
				now := time.Now()
				if n < ping.HeaderSize || buf[0] != 2 { // ping's reply type
					continue
				}
				sent := time.Unix(0, int64(binary.BigEndian.Uint64(buf[9:17])))
				select {
				case replies[i] <- reply{binary.BigEndian.Uint64(buf[1:9]), now.Sub(sent)}:
				default: // a late reply nobody waits for
				}
			}
		}()
	}
	stop := func() {
		for _, c := range conns {
			c.SetReadDeadline(time.Now())
		}
		wg.Wait()
	}
	probe := make([]byte, max(size, ping.HeaderSize))
	probe[0] = 1 // ping's request type
	timer := time.NewTimer(pairTimeout)
	defer timer.Stop()
	end := time.Now().Add(d)
	var seq uint64
	for k := 0; time.Now().Before(end) && ctx.Err() == nil; k++ {
		for j := range 2 {
			i := j
			if k%2 == 1 {
				i = 1 - j
			}
			seq++
			binary.BigEndian.PutUint64(probe[1:9], seq)
			binary.BigEndian.PutUint64(probe[9:17], uint64(time.Now().UnixNano()))
			if _, err := conns[i].Write(probe); err != nil {
				stop()
				return out, fmt.Errorf("probe: %w", err)
			}
			timer.Reset(pairTimeout)
		wait:
			for {
				select {
				case r, ok := <-replies[i]:
					if !ok {
						stop()
						return out, fmt.Errorf("reply: %w", readErr[i])
					}
					if r.seq == seq {
						out[i] = append(out[i], r.rtt)
						break wait
					}
				case <-timer.C:
					break wait // lost
				case <-ctx.Done():
					break wait
				}
			}
		}
	}
	stop()
	for _, err := range readErr {
		if err != nil && !errors.Is(err, io.EOF) && !isDeadline(err) {
			return out, err
		}
	}
	return out, nil
}

// isDeadline reports whether err is a passed deadline.
func isDeadline(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}

// quantileMS returns the q quantile of rtts in milliseconds (0 for none),
// as ping's statistics take it.
func quantileMS(rtts []time.Duration, q float64) float64 {
	if len(rtts) == 0 {
		return 0
	}
	s := slices.Clone(rtts)
	slices.Sort(s)
	return float64(s[min(len(s)-1, int(q*float64(len(s))))]) / 1e6
}

// printPaired adds the encrypted paths' paired round trips under the
// table.
func printPaired(w io.Writer, rows []Row) {
	first := true
	for _, r := range rows {
		if r.RTTPlainSamples == 0 {
			continue
		}
		if first {
			fmt.Fprintln(w, "  encrypted paths: round trips with probes alternating with the same path unencrypted (median, p99 ms, samples):")
			first = false
		}
		fmt.Fprintf(w, "  %-9s %5d B: encrypted %.4f, %.4f (%d); plain %.4f, %.4f (%d); median ratio %.3f\n", r.Path, r.Size,
			r.RTTMedianMS, r.RTTP99MS, r.RTTSamples, r.RTTPlainMedianMS, r.RTTPlainP99MS, r.RTTPlainSamples, r.RTTVsPlain)
	}
}
