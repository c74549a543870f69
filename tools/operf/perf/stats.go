package perf

import (
	"fmt"
	"time"
)

// Stats is one direction of a run, or one interval of it, as the
// receiver counted it, with the rates derived from the counts.
type Stats struct {
	// Sent is what the sender sent (whole runs only).
	Sent       uint64  `json:"sent,omitempty"`
	SentBytes  uint64  `json:"sent_bytes,omitempty"`
	Received   uint64  `json:"received"`
	Bytes      uint64  `json:"received_bytes"`
	Lost       uint64  `json:"lost"`
	Late       uint64  `json:"late"`
	LossPct    float64 `json:"loss_pct"`
	ElapsedS   float64 `json:"elapsed_s"`
	PPS        float64 `json:"pps"`
	Mbps       float64 `json:"mbps"`
	SendPPS    float64 `json:"send_pps,omitempty"`
	DelayAvgMS float64 `json:"delay_avg_ms"`
	DelayMaxMS float64 `json:"delay_max_ms"`
}

// StatsOf derives the rates of c. Loss is a share of what should have
// arrived (received plus lost).
func StatsOf(c Counts) Stats {
	s := Stats{Received: c.Packets, Bytes: c.Bytes, Lost: c.Lost, Late: c.Late,
		ElapsedS: c.Elapsed.Seconds(), DelayMaxMS: ms(c.DelayMax)}
	if n := c.Packets + c.Lost; n > 0 {
		s.LossPct = 100 * float64(c.Lost) / float64(n)
	}
	if c.Elapsed > 0 {
		s.PPS = float64(c.Packets) / c.Elapsed.Seconds()
		s.Mbps = 8 * float64(c.Bytes) / c.Elapsed.Seconds() / 1e6
	}
	if c.Packets > 0 {
		s.DelayAvgMS = ms(c.DelaySum) / float64(c.Packets)
	}
	return s
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// Line renders the rates of s on one line: packets/s, Mb/s and loss.
func (s Stats) Line() string {
	return fmt.Sprintf("%9.0f pkt/s %9.2f Mb/s  lost %d (%.2f%%)", s.PPS, s.Mbps, s.Lost, s.LossPct)
}

// Interval is one report interval of a run.
type Interval struct {
	Index  int     `json:"index"`
	StartS float64 `json:"start_s"`
	EndS   float64 `json:"end_s"`
	// Forward is client to server, as the server counted it.
	Forward Stats `json:"forward"`
	// Reverse is server to client, as the client counted it (both ways).
	Reverse *Stats `json:"reverse,omitempty"`
}

// Result is a whole run as the client reports it.
type Result struct {
	Name      string     `json:"name"`
	QoS       string     `json:"qos,omitempty"`
	Size      int        `json:"size"`
	Rate      float64    `json:"rate_pps,omitempty"`
	Duration  float64    `json:"duration_s"`
	Forward   Stats      `json:"forward"`
	Reverse   *Stats     `json:"reverse,omitempty"`
	Intervals []Interval `json:"intervals"`
	Error     string     `json:"error,omitempty"`
}

// Summary renders the closing lines of a run.
func (r *Result) Summary() string {
	out := fmt.Sprintf("--- %s perf statistics: %d-byte packets, %.2f s ---\n", r.Name, r.Size, r.Duration)
	out += direction("client -> server", r.Forward)
	if r.Reverse != nil {
		out += direction("server -> client", *r.Reverse)
	}
	return out
}

func direction(label string, s Stats) string {
	sent := fmt.Sprintf("%d sent", s.Sent)
	if s.SendPPS > 0 {
		sent += fmt.Sprintf(" (%.0f pkt/s)", s.SendPPS)
	}
	return fmt.Sprintf("%s: %s, %d received in %.2f s: %s\n%s  one-way delay avg/max = %.3f/%.3f ms, %d late\n",
		label, sent, s.Received, s.ElapsedS, s.Line(), pad(label), s.DelayAvgMS, s.DelayMaxMS, s.Late)
}

func pad(s string) string { return fmt.Sprintf("%*s", len(s), "") }
