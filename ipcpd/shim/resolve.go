package shim

import (
	"context"
	"fmt"

	"github.com/ouro-net/ouro/ipcpd/shim/wire"
	"github.com/ouro-net/ouro/lib/namehash"
)

// query is a name lookup in flight; concurrent lookups of one name
// share it. Its fields are guarded by Engine.mu.
type query[A comparable] struct {
	name     string
	peers    []A    // asked (nil: broadcast)
	answered []bool // per peer
	refs     int
	done     chan struct{} // closed once settled
	settled  bool
	found    bool
	addr     A
}

// settleLocked records the outcome; e.mu held.
func (q *query[A]) settleLocked(found bool, addr A) {
	if q.settled {
		return
	}
	q.settled, q.found, q.addr = true, found, addr
	close(q.done)
}

// Register makes name reachable through this IPCP.
func (e *Engine[A]) Register(name string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.names.Register(name)
}

// Unregister withdraws name; it reports whether it was registered.
func (e *Engine[A]) Unregister(name string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.names.Unregister(name)
}

// Query reports whether a peer has name registered, from the cache or
// by asking.
func (e *Engine[A]) Query(ctx context.Context, name string) (bool, error) {
	_, ok, err := e.resolve(ctx, name)
	return ok, err
}

// uncache drops what the cache says of h, after a peer refused it or
// vanished.
func (e *Engine[A]) uncache(h namehash.Hash) {
	e.mu.Lock()
	e.cache.Drop(h)
	e.mu.Unlock()
}

// resolve finds the peer that has name registered: from the cache,
// else by asking the configured peers (or the broadcast address) every
// QueryRetry, the silent peers only, until one says yes, all say no, or
// QueryTimeout passes.
func (e *Engine[A]) resolve(ctx context.Context, name string) (A, bool, error) {
	var none A
	h := namehash.Of(name)
	e.mu.Lock()
	switch {
	case e.closed:
		e.mu.Unlock()
		return none, false, ErrClosed
	case !e.carrier:
		e.mu.Unlock()
		return none, false, nil
	}
	if a, ok := e.cache.Get(e.clk.Now(), h); ok {
		e.mu.Unlock()
		return a, true, nil
	}
	peers := e.cfg.Peers
	if len(peers) == 0 && !e.cfg.Broadcasting {
		// Peers are how this medium finds names: none, no names.
		e.mu.Unlock()
		return none, false, nil
	}
	q := e.queries[h]
	if q == nil {
		q = &query[A]{name: name, done: make(chan struct{}), peers: peers, answered: make([]bool, len(peers))}
		e.queries[h] = q
	}
	q.refs++
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		if q.refs--; q.refs == 0 && e.queries[h] == q {
			delete(e.queries, h)
		}
		e.mu.Unlock()
	}()

	m := wire.Msg{Type: wire.Query, Hash: h}
	deadline := e.clk.NewTimer(e.t.QueryTimeout)
	defer deadline.Stop()
	retry := e.clk.NewTimer(e.t.QueryRetry)
	defer retry.Stop()
	var to []A
	for {
		to = to[:0]
		e.mu.Lock()
		for i, p := range peers {
			if !q.answered[i] {
				to = append(to, p)
			}
		}
		e.mu.Unlock()
		if e.cfg.Broadcasting {
			to = append(to, e.cfg.Broadcast)
		}
		for _, p := range to {
			e.send(p, &m)
			e.Counters.QueriesOut.Add(1)
		}
		retry.Reset(e.t.QueryRetry)
		select {
		case <-q.done:
			return q.addr, q.found, nil
		case <-retry.C():
		case <-deadline.C():
			return none, false, nil
		case <-ctx.Done():
			return none, false, fmt.Errorf("query %s: %w", h, ctx.Err())
		case <-e.ctx.Done():
			return none, false, ErrClosed
		}
	}
}

// onQueryReply takes a peer's answer to one of our queries. Answers
// nobody asked for are dropped, so a stranger cannot plant names in
// the cache.
func (e *Engine[A]) onQueryReply(src A, m *wire.Msg) {
	e.mu.Lock()
	defer e.mu.Unlock()
	q := e.queries[m.Hash]
	i := -1
	if q != nil {
		if q.peers == nil {
			i = 0 // broadcast: anyone on the medium may answer
		}
		for j, p := range q.peers {
			if p == src {
				i = j
			}
		}
	}
	if i < 0 {
		e.Counters.Unsolicited.Add(1)
		return
	}
	if m.Found {
		if !q.settled {
			e.cache.Put(e.clk.Now(), m.Hash, q.name, src)
		}
		q.settleLocked(true, src)
		return
	}
	if q.peers == nil {
		return // a "no" on a broadcast medium settles nothing
	}
	q.answered[i] = true
	for _, a := range q.answered {
		if !a {
			return
		}
	}
	var none A
	q.settleLocked(false, none)
}

// onQuery answers a query within the answer budget of its source: yes,
// or no unless the medium is Broadcasting.
func (e *Engine[A]) onQuery(src A, m *wire.Msg) {
	e.Counters.QueriesIn.Add(1)
	e.mu.Lock()
	_, found := e.names.Lookup(m.Hash)
	if !found && e.cfg.Broadcasting {
		e.mu.Unlock()
		return
	}
	allowed := e.allowAnswerLocked(src)
	e.mu.Unlock()
	if !allowed {
		e.Counters.QueriesLimited.Add(1)
		return
	}
	if e.send(src, &wire.Msg{Type: wire.QueryReply, Hash: m.Hash, Found: found}) {
		e.Counters.QueriesAnswered.Add(1)
	}
}

// allowAnswerLocked takes a token from the answer budget of src
// (admit.Answers: the configured peers have their own buckets, the
// other sources share one as well); e.mu held.
func (e *Engine[A]) allowAnswerLocked(src A) bool {
	return e.answers.Allow(e.clk.Now(), src)
}

func (e *Engine[A]) allowAnswer(src A) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.allowAnswerLocked(src)
}
