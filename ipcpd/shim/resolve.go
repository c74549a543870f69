package shim

import (
	"context"
	"errors"
	"fmt"

	"github.com/ouro-net/ouro/ipcpd/eth/frame"
	"github.com/ouro-net/ouro/ipcpd/shim/wire"
	"github.com/ouro-net/ouro/lib/namehash"
)

// ErrClosed is returned by calls on a closed engine.
var ErrClosed = errors.New("IPCP is shutting down")

// query is a resolution in progress; every caller asking for the same
// hash waits on it.
type query struct {
	waiters int
	done    chan struct{} // closed when answered
	mac     frame.MAC
}

// Register makes name reachable through this station.
func (e *Engine) Register(name string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.names.Register(name)
}

// Unregister withdraws name; it reports whether it was registered.
func (e *Engine) Unregister(name string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.names.Unregister(name)
}

// Query reports whether another station on the segment has name
// registered, from the cache or by broadcasting a query.
func (e *Engine) Query(ctx context.Context, name string) (bool, error) {
	_, ok, err := e.resolve(ctx, namehash.Of(name))
	return ok, err
}

// resolve returns the station that has hash, asking the segment if the
// cache has no fresh answer.
func (e *Engine) resolve(ctx context.Context, hash namehash.Hash) (frame.MAC, bool, error) {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return frame.MAC{}, false, ErrClosed
	}
	if !e.carrier {
		e.mu.Unlock()
		return frame.MAC{}, false, nil
	}
	if mac, ok := e.cache.Get(e.clk.Now(), hash); ok {
		e.mu.Unlock()
		return mac, true, nil
	}
	q := e.queries[hash]
	if q == nil {
		q = &query{done: make(chan struct{})}
		e.queries[hash] = q
	}
	q.waiters++
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		if q.waiters--; q.waiters == 0 && e.queries[hash] == q {
			delete(e.queries, hash)
		}
		e.mu.Unlock()
	}()

	ask := func() {
		if err := e.sendMgmt(frame.Broadcast(), wire.Msg{Type: wire.Query, Hash: hash}); err != nil {
			e.log.Debug("query not sent", "hash", hash, "error", err)
		}
	}
	ask()
	deadline := e.clk.NewTimer(e.t.QueryTimeout)
	defer deadline.Stop()
	retry := e.clk.NewTimer(e.t.QueryRetry)
	defer retry.Stop()
	for {
		select {
		case <-q.done:
			return q.mac, true, nil
		case <-retry.C():
			ask()
			retry.Reset(e.t.QueryRetry)
		case <-deadline.C():
			return frame.MAC{}, false, nil
		case <-ctx.Done():
			return frame.MAC{}, false, fmt.Errorf("query %s: %w", hash, ctx.Err())
		case <-e.ctx.Done():
			return frame.MAC{}, false, ErrClosed
		}
	}
}

// forget drops a cached answer that proved wrong.
func (e *Engine) forget(hash namehash.Hash, mac frame.MAC) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.cache.Forget(hash, mac)
}

// onQuery answers a query for a name registered here, within the rate
// limit.
func (e *Engine) onQuery(src frame.MAC, m wire.Msg) {
	e.Counters.QueriesIn.Add(1)
	e.mu.Lock()
	_, ok := e.names.Lookup(m.Hash)
	allowed := ok && e.allowAnswerLocked(src)
	e.mu.Unlock()
	if !ok {
		return
	}
	if !allowed {
		e.Counters.QueriesLimited.Add(1)
		return
	}
	if err := e.sendMgmt(src, wire.Msg{Type: wire.QueryReply, Hash: m.Hash, Found: true}); err == nil {
		e.Counters.QueryReplies.Add(1)
	}
}

// allowAnswerLocked takes a token from the answer budget of src
// (admit.Answers: QueryRate in total, a tenth of it per source); e.mu
// held.
func (e *Engine) allowAnswerLocked(src frame.MAC) bool {
	return e.answers.Allow(e.clk.Now(), src)
}

// onQueryReply completes a pending query; unsolicited answers are
// dropped so they cannot fill the cache.
func (e *Engine) onQueryReply(src frame.MAC, m wire.Msg) {
	e.mu.Lock()
	defer e.mu.Unlock()
	q := e.queries[m.Hash]
	if q == nil {
		e.Counters.Unsolicited.Add(1)
		return
	}
	if !m.Found {
		// Stations on a segment answer only for names they have;
		// a "no" settles nothing.
		return
	}
	select {
	case <-q.done:
		return // a second station answered; the first one stands
	default:
	}
	e.cache.Put(e.clk.Now(), m.Hash, "", src)
	q.mac = src
	close(q.done)
}
