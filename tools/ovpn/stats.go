package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ouro-net/ouro/flow"
	"github.com/ouro-net/ouro/lib/seal"
)

// Drop reasons, each counted.
const (
	dropNoFlow     = "no-flow"     // a packet from the TUN while no flow is up (client)
	dropNoRoute    = "no-route"    // a packet for an address no client owns (server)
	dropQueueFull  = "queue-full"  // a client's send queue was full (server)
	dropTooBig     = "too-big"     // larger than the flow's MTU
	dropWrite      = "write-error" // the flow or TUN refused the write
	dropSpoofed    = "spoofed"     // a client sent from an address not its own (server)
	dropNotIP      = "not-ip"      // a data packet that is not IPv4 or IPv6
	dropBadControl = "bad-control" // a control message that does not parse
	dropEarly      = "before-hello"

	// Packets of an encrypted tunnel flow that the flow library dropped
	// (its seal.Stats): they never reach ovpn's own code.
	dropCryptoAuth      = "crypto-auth"         // failed authentication: forged or corrupted
	dropCryptoShort     = "crypto-short"        // too short or not a sealed packet: truncated, garbage
	dropCryptoReplayed  = "crypto-replayed"     // replayed, or older than the replay window
	dropCryptoHandshake = "crypto-handshake"    // a key-exchange message after the exchange
	dropKeyExchange     = "key-exchange-failed" // server: encrypted flows whose key exchange failed
)

// counters are the tunnel's packet and byte counts. "in" is what came
// from the peer(s) over flows and went into the TUN device, "out" what
// the TUN device gave and went to the peer(s).
type counters struct {
	pktsIn, bytesIn, pktsOut, bytesOut atomic.Uint64

	mu    sync.Mutex
	drops map[string]uint64
	// live are the flows whose seal counters are added to the drops;
	// retired holds the counts of the flows gone.
	live    map[*flow.Flow]struct{}
	retired seal.Stats

	// keyExchangeFailures, if set (a server), counts the encrypted
	// flows its Listener dropped in the key exchange.
	keyExchangeFailures func() uint64
}

// track adds f's sealing drops (if f is encrypted) to the counters
// until retire(f).
func (c *counters) track(f *flow.Flow) {
	c.mu.Lock()
	if c.live == nil {
		c.live = map[*flow.Flow]struct{}{}
	}
	c.live[f] = struct{}{}
	c.mu.Unlock()
}

// retire keeps f's sealing drops and stops tracking it.
func (c *counters) retire(f *flow.Flow) {
	c.mu.Lock()
	if _, ok := c.live[f]; ok {
		delete(c.live, f)
		addSeal(&c.retired, f.Crypto())
	}
	c.mu.Unlock()
}

func addSeal(sum *seal.Stats, s *seal.Stats) {
	if s == nil {
		return
	}
	sum.Auth += s.Auth
	sum.Short += s.Short
	sum.Replayed += s.Replayed
	sum.Handshake += s.Handshake
}

func (c *counters) in(n int) {
	c.pktsIn.Add(1)
	c.bytesIn.Add(uint64(n))
}

func (c *counters) out(n int) {
	c.pktsOut.Add(1)
	c.bytesOut.Add(uint64(n))
}

func (c *counters) drop(reason string) {
	c.mu.Lock()
	if c.drops == nil {
		c.drops = map[string]uint64{}
	}
	c.drops[reason]++
	c.mu.Unlock()
}

// snapshot is the counters at one moment, as printed.
type snapshot struct {
	PacketsIn  uint64            `json:"packets_in"`
	BytesIn    uint64            `json:"bytes_in"`
	PacketsOut uint64            `json:"packets_out"`
	BytesOut   uint64            `json:"bytes_out"`
	Drops      map[string]uint64 `json:"drops,omitempty"`
}

func (c *counters) snapshot() snapshot {
	s := snapshot{PacketsIn: c.pktsIn.Load(), BytesIn: c.bytesIn.Load(), PacketsOut: c.pktsOut.Load(),
		BytesOut: c.bytesOut.Load()}
	c.mu.Lock()
	drops := make(map[string]uint64, len(c.drops)+5)
	for k, v := range c.drops {
		drops[k] = v
	}
	sealed := c.retired
	for f := range c.live {
		addSeal(&sealed, f.Crypto())
	}
	c.mu.Unlock()
	for k, v := range map[string]uint64{dropCryptoAuth: sealed.Auth, dropCryptoShort: sealed.Short,
		dropCryptoReplayed: sealed.Replayed, dropCryptoHandshake: sealed.Handshake} {
		if v > 0 {
			drops[k] = v
		}
	}
	if c.keyExchangeFailures != nil {
		if n := c.keyExchangeFailures(); n > 0 {
			drops[dropKeyExchange] = n
		}
	}
	if len(drops) > 0 {
		s.Drops = drops
	}
	return s
}

func (s snapshot) String() string {
	line := fmt.Sprintf("in %d packets %d bytes, out %d packets %d bytes", s.PacketsIn, s.BytesIn, s.PacketsOut, s.BytesOut)
	if len(s.Drops) > 0 {
		var keys []string
		for k := range s.Drops {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var parts []string
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s %d", k, s.Drops[k]))
		}
		line += ", dropped: " + strings.Join(parts, ", ")
	}
	return line
}

// event is one status line: what happened, and the counters.
type event struct {
	Time    string    `json:"time"`
	Event   string    `json:"event"`
	Dev     string    `json:"dev,omitempty"`
	IP      string    `json:"ip,omitempty"`
	Peer    string    `json:"peer,omitempty"`
	Flow    uint64    `json:"flow,omitempty"`
	Layer   string    `json:"layer,omitempty"`
	MTU     int       `json:"mtu,omitempty"`
	Clients *int      `json:"clients,omitempty"`
	Error   string    `json:"error,omitempty"`
	Retry   string    `json:"retry_in,omitempty"`
	Stats   *snapshot `json:"stats,omitempty"`
}

// reporter prints status lines, as text or one JSON object per line.
type reporter struct {
	mu   sync.Mutex
	w    io.Writer
	json bool
	now  func() time.Time
}

// emit prints one event; text is the human form.
func (r *reporter) emit(e event, text string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.json {
		e.Time = r.now().UTC().Format(time.RFC3339Nano)
		json.NewEncoder(r.w).Encode(e)
		return
	}
	fmt.Fprintf(r.w, "ovpn: %s\n", text)
}
