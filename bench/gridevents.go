package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// The adjacency events of the unicast IPCPs (ipcpd/unicast adj.go:
// "adjacency down", "adjacency back", "held suspension flooded"), read
// from their JSON logs (OURO_LOGDIR, one file per IPCP, named after
// it; the unicast IPCP of a grid host is named after the host), so the
// grid bench can say of every false down what kind it was and why.
const (
	evDown    = "adjacency down"
	evBack    = "adjacency back"
	evFlooded = "held suspension flooded"
)

// gridEvent is one adjacency event.
type gridEvent struct {
	Host string
	Msg  string
	At   time.Time
	ID   uint64
	F    map[string]any
}

// GridDown is one adjacency down, with what the detector said and what
// became of it.
type GridDown struct {
	Host   string    `json:"host"`
	Peer   string    `json:"peer"`
	At     time.Time `json:"at"`
	Reason string    `json:"reason"`
	// Rule is the detector rule that fired: bound (the learned bound),
	// link (link evidence), only (the only flow up, past the hold), or
	// hard (carrier loss, flow gone).
	Rule      string  `json:"rule"`
	Mode      string  `json:"mode"`
	SilenceMS float64 `json:"silence_ms"`
	BoundMS   float64 `json:"bound_ms"`
	// Kind: "held" (suspended locally and taken back before the hold
	// ran out: nothing flooded), "flooded" (routing was told), or
	// "open" (neither by the end of the run).
	Kind string `json:"kind"`
	// Back says what brought it back (heard, hello, starved) and
	// after how long.
	Back   string  `json:"back,omitempty"`
	DownMS float64 `json:"down_ms,omitempty"`
	// HeardAfterMS is when the peer was heard after the down.
	HeardAfterMS float64 `json:"heard_after_ms,omitempty"`
	// Starved: this host had stalled itself (its own tick late) within
	// the bound before the down, or the peer said it was starved.
	Starved bool           `json:"starved"`
	Fields  map[string]any `json:"fields"`
}

// GridDowns sums the downs of one spell.
type GridDowns struct {
	Total   int `json:"total"`
	Held    int `json:"held_taken_back"`
	Flooded int `json:"flooded"`
	Open    int `json:"open"`
	Starved int `json:"starved"`
	// ByRule counts by rule/mode, e.g. "bound/active".
	ByRule map[string]int `json:"by_rule"`
	Downs  []GridDown     `json:"downs,omitempty"`
}

// readGridEvents reads the adjacency events of every IPCP log in dir.
func readGridEvents(dir string) ([]gridEvent, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.log"))
	if err != nil {
		return nil, err
	}
	var evs []gridEvent
	for _, p := range files {
		host := strings.TrimSuffix(filepath.Base(p), ".log")
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			if !strings.Contains(string(line), "adjacency") && !strings.Contains(string(line), "held suspension") {
				continue
			}
			var m map[string]any
			dec := json.NewDecoder(bytes.NewReader(line))
			dec.UseNumber() // at_ns needs all 64 bits
			if dec.Decode(&m) != nil {
				continue
			}
			msg, _ := m["@message"].(string)
			if msg != evDown && msg != evBack && msg != evFlooded {
				continue
			}
			n, _ := m["at_ns"].(json.Number)
			at, _ := n.Int64()
			n, _ = m["id"].(json.Number)
			id, _ := n.Int64()
			for k, v := range m {
				if n, ok := v.(json.Number); ok {
					m[k], _ = n.Float64()
				}
			}
			evs = append(evs, gridEvent{Host: host, Msg: msg, At: time.Unix(0, at), ID: uint64(id), F: m})
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
	}
	sort.Slice(evs, func(i, j int) bool { return evs[i].At.Before(evs[j].At) })
	return evs, nil
}

// gridDownsIn sums the downs of evs declared in [from, to), each
// followed to what became of it (in all of evs).
func gridDownsIn(evs []gridEvent, from, to time.Time) *GridDowns {
	s := &GridDowns{ByRule: map[string]int{}}
	for i, e := range evs {
		if e.Msg != evDown || e.At.Before(from) || !e.At.Before(to) {
			continue
		}
		d := GridDown{Host: e.Host, At: e.At, Kind: "open", Fields: map[string]any{}}
		d.Peer, _ = e.F["peer"].(string)
		d.Reason, _ = e.F["reason"].(string)
		d.Rule, _ = e.F["rule"].(string)
		d.Mode, _ = e.F["mode"].(string)
		d.SilenceMS, _ = e.F["silence_ms"].(float64)
		d.BoundMS, _ = e.F["bound_ms"].(float64)
		if d.Rule == "" {
			d.Rule = "hard"
		}
		for k, v := range e.F {
			switch k {
			case "@level", "@message", "@module", "@timestamp", "peer", "reason", "rule", "mode", "silence_ms", "bound_ms", "at_ns", "lower":
			default:
				d.Fields[k] = v
			}
		}
		if held, _ := e.F["withdraw_held"].(bool); !held {
			d.Kind = "flooded"
		}
		bound := time.Duration(d.BoundMS * float64(time.Millisecond))
		if ago, ok := e.F["own_stall_ago_ms"].(float64); ok && time.Duration(ago*float64(time.Millisecond)) <= bound+time.Duration(d.SilenceMS*float64(time.Millisecond)) {
			d.Starved = true
		}
	follow:
		for _, n := range evs[i+1:] {
			if n.Host != e.Host || n.ID != e.ID {
				continue
			}
			switch n.Msg {
			case evFlooded:
				d.Kind = "flooded"
			case evBack:
				if d.Kind == "open" {
					d.Kind = "held"
				}
				d.Back, _ = n.F["by"].(string)
				d.DownMS, _ = n.F["down_ms"].(float64)
				d.HeardAfterMS, _ = n.F["heard_after_ms"].(float64)
				if d.Back == "starved" {
					d.Starved = true
				}
				break follow
			case evDown:
				break follow
			}
		}
		s.Total++
		switch d.Kind {
		case "held":
			s.Held++
		case "flooded":
			s.Flooded++
		default:
			s.Open++
		}
		if d.Starved {
			s.Starved++
		}
		s.ByRule[d.Rule+"/"+d.Mode]++
		s.Downs = append(s.Downs, d)
	}
	return s
}

// print writes the summary of one spell and its first downs.
func (s *GridDowns) print(w io.Writer, spell string, list int) {
	if s == nil {
		return
	}
	rules := make([]string, 0, len(s.ByRule))
	for r, n := range s.ByRule {
		rules = append(rules, fmt.Sprintf("%s %d", r, n))
	}
	sort.Strings(rules)
	fmt.Fprintf(w, "downs %s: %d (held and taken back %d, flooded %d, open %d; starved %d); by rule/mode: %s\n",
		spell, s.Total, s.Held, s.Flooded, s.Open, s.Starved, strings.Join(rules, ", "))
	for i, d := range s.Downs {
		if i == list {
			fmt.Fprintf(w, "  ... %d more in the JSON\n", len(s.Downs)-list)
			break
		}
		f := make([]string, 0, len(d.Fields))
		for k, v := range d.Fields {
			f = append(f, fmt.Sprintf("%s=%v", k, v))
		}
		sort.Strings(f)
		fmt.Fprintf(w, "  %s %s->%s %s/%s silence %.1f bound %.1f ms: %s, back by %q after %.1f ms (heard after %.1f); starved %v; %s\n",
			d.At.Format("15:04:05.000"), d.Host, d.Peer, d.Rule, d.Mode, d.SilenceMS, d.BoundMS, d.Kind, d.Back, d.DownMS, d.HeardAfterMS,
			d.Starved, strings.Join(f, " "))
	}
}
