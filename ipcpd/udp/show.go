package udp

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ouro-net/ouro/ipcpd/shim"
	"github.com/ouro-net/ouro/lib/ctrl"
)

// counters are what only this medium counts; the engine counts the
// rest (shim.Counters).
type counters struct {
	rxOversize  atomic.Uint64 // datagram larger than the buffer (truncated by the kernel)
	txDrill     atomic.Uint64 // data packets the loss drill dropped
	directFlows atomic.Uint64 // flows whose data went direct
}

// list names them, in the order Show prints them after the engine's.
func (c *counters) list() []shim.Counter {
	return []shim.Counter{{Name: "drop-oversize", V: &c.rxOversize}, {Name: "drop-drill", V: &c.txDrill},
		{Name: "flows-direct", V: &c.directFlows}}
}

// Show describes the IPCP for `irm layer show`: its socket, peers,
// then the engine (names, resolved names, limits, flows, counters).
func (u *IPCP) Show(context.Context) (string, error) {
	u.mu.RLock()
	booted := u.booted
	u.mu.RUnlock()
	if !booted {
		return fmt.Sprintf("%s IPCP %s: not bootstrapped\n", u.h.Type, u.h.Name), nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s IPCP %s in layer %s\n", u.h.Type, u.h.Name, u.h.Layer())
	fmt.Fprintf(&b, "  address  %s\n", u.local)
	fmt.Fprintf(&b, "  mtu      %d (link %d, data header %d bytes)\n", u.mtu, u.linkMTU, eidLen)
	fmt.Fprintf(&b, "  buffers  rcvbuf %d sndbuf %d bytes, recvmmsg batch %d of %d\n", u.rcvBuf, u.sndBuf, u.rx.slots.Load(), rxBatch)
	fmt.Fprintf(&b, "  peers    %s\n", orNone(addrStrings(u.peers)))
	if u.loss != 0 {
		fmt.Fprintf(&b, "  drill    %.1f%% of each flow's data packets dropped at random\n", u.loss*100)
	}
	return u.eng.Show(b.String(), u.ctr.list()), nil
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "(none)"
	}
	return strings.Join(s, ", ")
}

// Status describes the IPCP as data (ctrl.ShimStatus): what Show says,
// for `irm layer show --json` and for tools that read fields.
func (u *IPCP) Status(context.Context) (*ctrl.Status, error) {
	u.mu.RLock()
	booted := u.booted
	u.mu.RUnlock()
	if !booted {
		return nil, nil
	}
	sh := u.eng.Status(u.ctr.list())
	sh.Address, sh.Peers = u.local.String(), addrStrings(u.peers)
	st := &ctrl.Status{At: time.Now(), Shim: sh}
	st.Process.Flows = len(u.h.Flows())
	return st, nil
}
