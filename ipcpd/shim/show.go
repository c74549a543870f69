package shim

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/ouro-net/ouro/ipcpd/eth/frame"
	"github.com/ouro-net/ouro/ipcpd/shim/dir"
	"github.com/ouro-net/ouro/lib/namehash"
)

// What Show lists at most.
const (
	showFlows   = 32
	showSources = 5
)

func macLess(x, y frame.MAC) bool { return bytes.Compare(x[:], y[:]) < 0 }

// Show describes the engine for `irm layer show`: device, addresses,
// carrier, names, cached answers, flows with their counters, and the
// engine's counters.
func (e *Engine) Show() string {
	var b strings.Builder
	d := e.cfg.Dev
	fmt.Fprintf(&b, "device   %s (index %d), MAC %s, EtherType 0x%04x, device MTU %d, flow MTU %d\n",
		d.Name, d.Index, e.mac, e.etype, d.MTU, e.mtu)
	if d.Info != "" {
		fmt.Fprintf(&b, "medium   %s\n", d.Info)
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	now := e.clk.Now()
	state := "down"
	if e.carrier {
		state = "up"
	}
	fmt.Fprintf(&b, "carrier  %s since %s (%d changes)\n", state, e.carrierAt.Format("15:04:05.000"),
		e.Counters.CarrierChanges.Load())
	fmt.Fprintf(&b, "names    %s\n", orNone(strings.Join(e.names.Sorted(), ", ")))
	cache := e.cache.Lines(now, showFlows, func(h namehash.Hash, c dir.Entry[frame.MAC], left time.Duration) string {
		return fmt.Sprintf("%s -> %s (%v left)", h, c.Addr, left.Round(time.Second))
	})
	fmt.Fprintf(&b, "cache    %s\n", orNone(strings.Join(cache, "; ")))
	e.adm.Show(&b, "", e.t.ConfirmTimeout, showSources, macLess)
	// At most showFlows flows are listed, lowest eids first, so that
	// the answer stays small whatever the number of flows.
	eids := make([]int, 0, len(e.flows))
	for eid := range e.flows {
		eids = append(eids, int(eid))
	}
	sort.Ints(eids)
	fmt.Fprintf(&b, "flows    %d\n", len(eids))
	for i, eid := range eids {
		if i == showFlows {
			fmt.Fprintf(&b, "  ... and %d more\n", len(eids)-showFlows)
			break
		}
		fr := e.flows[uint16(eid)]
		fmt.Fprintf(&b, "  eid %d -> %s eid %d  %q  %s", fr.local, fr.peer, fr.remote, fr.name, fr.state)
		if fr.incoming && !fr.confirmed {
			b.WriteString(" unconfirmed")
		}
		if f := fr.f; f != nil {
			fmt.Fprintf(&b, "  flow %d: to peer %d pkts %d B, to app %d pkts %d B, drops %d",
				f.ID, f.PktsIn.Load(), f.BytesIn.Load(), f.PktsOut.Load(), f.BytesOut.Load(), f.Drops.Load())
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "counters %s\n", e.Counters.String())
	return b.String()
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
