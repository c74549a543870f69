package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"
)

// Row is one path at one packet size.
type Row struct {
	Path        string  `json:"path"`
	Size        int     `json:"size"`
	RTTMedianMS float64 `json:"rtt_median_ms"`
	RTTP99MS    float64 `json:"rtt_p99_ms"`
	RTTSamples  int     `json:"rtt_samples"`
	PPS         float64 `json:"pps"`
	Mbps        float64 `json:"mbps"`
	LossPct     float64 `json:"loss_pct"`
	Sent        uint64  `json:"sent"`
	Received    uint64  `json:"received"`
	// AdjDowns counts the adjacencies of a unicast layer that went down
	// during the flood (hellos starved by data).
	AdjDowns int `json:"adjacency_downs_in_flood"`
	// On an encrypted (-x) path: the same path's round trips with the
	// flow unencrypted, measured interleaved with the encrypted ones
	// (xpair.go), and the ratio of the medians (encrypted/plain).
	RTTPlainMedianMS float64 `json:"rtt_plain_median_ms,omitempty"`
	RTTPlainP99MS    float64 `json:"rtt_plain_p99_ms,omitempty"`
	RTTPlainSamples  int     `json:"rtt_plain_samples,omitempty"`
	RTTVsPlain       float64 `json:"rtt_median_x_plain,omitempty"`
	// Ratios to raw UDP at the same size (0 when there is no baseline):
	// round trips as path/raw (above 1 is slower), packets/s as
	// path/raw (below 1 is slower).
	RTTMedianX float64 `json:"rtt_median_x_raw,omitempty"`
	RTTP99X    float64 `json:"rtt_p99_x_raw,omitempty"`
	PPSX       float64 `json:"pps_x_raw,omitempty"`
	Error      string  `json:"error,omitempty"`
}

// Table is one bench run.
type Table struct {
	Started    time.Time         `json:"started"`
	GoVersion  string            `json:"go_version"`
	CPUs       int               `json:"cpus"`
	DurationS  float64           `json:"duration_per_measurement_s"`
	Paths      map[string]string `json:"paths"`
	Notes      []string          `json:"notes,omitempty"`
	Rows       []Row             `json:"rows"`
	Bulk       []BulkRow         `json:"bulk,omitempty"` // bulk.go
	ElapsedS   float64           `json:"elapsed_s"`
	FailedRows int               `json:"failed_rows"`
}

// ratios fills every row's ratios to the raw row of the same size.
func (t *Table) ratios() {
	raw := map[int]Row{}
	for _, r := range t.Rows {
		if r.Path == pathRaw {
			raw[r.Size] = r
		}
	}
	div := func(a, b float64) float64 {
		if a == 0 || b == 0 {
			return 0
		}
		return a / b
	}
	t.FailedRows = 0
	for i := range t.Rows {
		r := &t.Rows[i]
		if r.Error != "" {
			t.FailedRows++
		}
		b, ok := raw[r.Size]
		if !ok {
			continue
		}
		r.RTTMedianX, r.RTTP99X, r.PPSX = div(r.RTTMedianMS, b.RTTMedianMS), div(r.RTTP99MS, b.RTTP99MS), div(r.PPS, b.PPS)
	}
}

// Print writes the table for people.
func (t *Table) Print(w io.Writer) {
	fmt.Fprintf(w, "ouro bench, %s, %s, %d CPUs, %v per measurement\n", t.Started.Format(time.RFC3339), t.GoVersion,
		t.CPUs, time.Duration(t.DurationS*float64(time.Second)))
	for _, p := range allPaths() {
		if d, ok := t.Paths[p]; ok {
			fmt.Fprintf(w, "  %-9s %s\n", p, d)
		}
	}
	for _, n := range t.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
	fmt.Fprintln(w, "  round trip: ping-pong, one probe in flight; flood: packets/s received, sender unpaced; xraw: ratio to raw UDP;")
	fmt.Fprintln(w, "  adj down: unicast adjacencies declared down during the flood")
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "path     \tsize B\trtt median ms\txraw\trtt p99 ms\txraw\tflood pkt/s\txraw\tMb/s\tloss %\tadj down\t")
	x := func(v float64) string {
		if v == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f", v)
	}
	for _, r := range t.Rows {
		downs := "-"
		if r.Path == pathUnicast1 || r.Path == pathUnicast2 || r.Path == pathUnicast2s {
			downs = fmt.Sprint(r.AdjDowns)
		}
		fmt.Fprintf(tw, "%-9s\t%d\t%.3f\t%s\t%.3f\t%s\t%.0f\t%s\t%.1f\t%.2f\t%s\t\n", r.Path, r.Size, r.RTTMedianMS, x(r.RTTMedianX),
			r.RTTP99MS, x(r.RTTP99X), r.PPS, x(r.PPSX), r.Mbps, r.LossPct, downs)
	}
	tw.Flush()
	printPaired(w, t.Rows)
	for _, r := range t.Rows {
		if r.Error != "" {
			fmt.Fprintf(w, "  %s %d B: %s\n", r.Path, r.Size, r.Error)
		}
	}
	printBulk(w, t.Bulk)
}

// writeJSON writes v, indented, to file, creating its directory.
func writeJSON(file string, v any) error {
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return fmt.Errorf("create the output directory: %w", err)
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(file, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	return nil
}

// parseOnly turns "-only local,raw" into the paths to measure, in the
// measuring order.
func parseOnly(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return allPaths(), nil
	}
	want := map[string]bool{}
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		if describe(p) == "" {
			return nil, fmt.Errorf("unknown path %q (want some of %s)", p, strings.Join(allPaths(), ","))
		}
		want[p] = true
	}
	var out []string
	for _, p := range allPaths() {
		if want[p] {
			out = append(out, p)
		}
	}
	return out, nil
}
