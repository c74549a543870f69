package udp

import (
	"context"
	"errors"
	"github.com/ouro-net/ouro/ipcpd/shim/wire"
	"net/netip"

	"github.com/ouro-net/ouro/lib/namehash"
)

// errClosing is returned by calls that race with Close.
var errClosing = errors.New("IPCP is shutting down")

// query is a name lookup in flight; concurrent lookups of one name share
// it. Its fields are guarded by IPCP.mu.
type query struct {
	name     string
	peers    []netip.AddrPort // asked (as received: no zone)
	answered []bool           // per peer
	refs     int
	done     chan struct{} // closed once settled
	settled  bool
	found    bool
	addr     netip.AddrPort
}

// settleLocked records the outcome; u.mu held.
func (q *query) settleLocked(found bool, addr netip.AddrPort) {
	if q.settled {
		return
	}
	q.settled, q.found, q.addr = true, found, addr
	close(q.done)
}

// cached returns where h is, from a live cache entry.
func (u *IPCP) cached(h namehash.Hash) (netip.AddrPort, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.cache.Get(u.clk.Now(), h)
}

// uncache drops h, after a peer refused it or vanished.
func (u *IPCP) uncache(h namehash.Hash) {
	u.mu.Lock()
	u.cache.Drop(h)
	u.mu.Unlock()
}

// resolve finds the peer that has the name of hash h registered: from
// the cache, else by asking every configured peer (retransmitting to
// those that stay silent) until one says yes or all say no.
func (u *IPCP) resolve(ctx context.Context, name string) (netip.AddrPort, bool, error) {
	h := namehash.Of(name)
	if a, ok := u.cached(h); ok {
		return a, true, nil
	}
	if len(u.peers) == 0 {
		return netip.AddrPort{}, false, nil
	}
	u.mu.Lock()
	if u.closed {
		u.mu.Unlock()
		return netip.AddrPort{}, false, errClosing
	}
	q := u.queries[h]
	if q == nil {
		q = &query{name: name, done: make(chan struct{}), answered: make([]bool, len(u.peers))}
		for _, p := range u.peers {
			q.peers = append(q.peers, noZone(p))
		}
		u.queries[h] = q
	}
	q.refs++
	u.mu.Unlock()
	defer func() {
		u.mu.Lock()
		if q.refs--; q.refs == 0 && u.queries[h] == q {
			delete(u.queries, h)
		}
		u.mu.Unlock()
	}()

	m := wire.Msg{Type: wire.Query, Hash: h}
	t := u.clk.NewTimer(u.tm.retry)
	defer t.Stop()
	var to []netip.AddrPort
	for range u.tm.queryTries {
		to = to[:0]
		u.mu.Lock()
		for i, p := range u.peers {
			if !q.answered[i] {
				to = append(to, p)
			}
		}
		u.mu.Unlock()
		for _, p := range to {
			u.sendMsg(&m, p)
			u.ctr.queriesOut.Add(1)
		}
		t.Reset(u.tm.retry)
		select {
		case <-q.done:
			return q.addr, q.found, nil
		case <-t.C():
		case <-ctx.Done():
			return netip.AddrPort{}, false, ctx.Err()
		case <-u.ctx.Done():
			return netip.AddrPort{}, false, errClosing
		}
	}
	return netip.AddrPort{}, false, nil
}

// onQueryReply takes a peer's answer to one of our queries.
func (u *IPCP) onQueryReply(m *wire.Msg, src netip.AddrPort) {
	u.mu.Lock()
	defer u.mu.Unlock()
	q := u.queries[m.Hash]
	i := -1
	if q != nil {
		for j, p := range q.peers {
			if p == src {
				i = j
			}
		}
	}
	if i < 0 {
		// Nobody asked that peer for that name: ignore, so a stranger
		// cannot plant names in the cache.
		u.ctr.rxUnsolicited.Add(1)
		return
	}
	q.answered[i] = true
	if m.Found {
		u.cache.Put(u.clk.Now(), m.Hash, q.name, src)
		q.settleLocked(true, src)
		return
	}
	for _, a := range q.answered {
		if !a {
			return
		}
	}
	q.settleLocked(false, netip.AddrPort{})
}

// onQuery answers a query, yes or no, within the rate limit of its
// source's class (each configured peer has its own budget, everyone
// else shares one).
func (u *IPCP) onQuery(m *wire.Msg, src netip.AddrPort) {
	u.ctr.queriesIn.Add(1)
	if !u.allowAnswer(src) {
		u.ctr.queriesLimited.Add(1)
		return
	}
	u.mu.RLock()
	_, found := u.names.Lookup(m.Hash)
	u.mu.RUnlock()
	r := wire.Msg{Type: wire.QueryReply, Hash: m.Hash, Found: found}
	u.rxOut = mgmtFrame(u.rxOut, &r)
	if _, err := u.conn.WriteToUDPAddrPort(u.rxOut, u.canonical(src)); err != nil {
		u.ctr.txErrors.Add(1)
		return
	}
	u.ctr.queriesAnswered.Add(1)
}

// allowAnswer takes a token from the answer budget of src
// (admit.Answers: the configured peers have their own buckets, the
// other sources share one as well). Only the receive goroutine calls it.
func (u *IPCP) allowAnswer(src netip.AddrPort) bool {
	return u.answers.Allow(u.clk.Now(), src)
}

// noZone strips an IPv6 zone, as received source addresses have none.
func noZone(a netip.AddrPort) netip.AddrPort {
	if a.Addr().Zone() == "" {
		return a
	}
	return netip.AddrPortFrom(a.Addr().WithZone(""), a.Port())
}

// canonical maps a received source address to the configured peer it
// is (which keeps the zone sending needs), else returns it unchanged.
func (u *IPCP) canonical(src netip.AddrPort) netip.AddrPort {
	for _, p := range u.peers {
		if noZone(p) == src {
			return p
		}
	}
	return src
}
