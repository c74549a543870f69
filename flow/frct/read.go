package frct

import (
	"io"
	"net"
)

// Read reads from the next message. It never returns bytes of two
// messages at once: a buffer at least as large as the message gets it
// whole, a smaller one gets the rest on the following Reads. After the
// peer's FIN and all data before it, Read returns io.EOF.
func (c *Conn) Read(p []byte) (int, error) {
	if err := c.acquire("read", c.rsem, c.rdl); err != nil {
		return 0, err
	}
	defer func() { <-c.rsem }()
	var out outbox
	defer c.flush(&out)
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		switch {
		case c.closing:
			return 0, opError("read", net.ErrClosed)
		case len(c.ready) > 0:
			if len(p) == 0 {
				return 0, nil
			}
			return c.readReadyLocked(p, &out), nil
		case c.finRcvd:
			return 0, io.EOF
		case c.err != nil:
			return 0, opError("read", c.err)
		case c.rdl.expired():
			return 0, timeoutError("read")
		}
		ch := waitChLocked(&c.rwake)
		c.mu.Unlock()
		select {
		case <-ch:
		case <-c.rdl.done():
		case <-c.dead:
		}
		c.mu.Lock()
	}
}

// readReadyLocked copies from the head message and, when that frees
// enough of the window, queues a window update.
func (c *Conn) readReadyLocked(p []byte, out *outbox) int {
	m := c.ready[0]
	n := 0
	for n < len(p) && m.idx < len(m.frags) {
		f := &m.frags[m.idx]
		k := copy(p[n:], f.data[m.off:])
		n += k
		m.off += k
		if m.off == len(f.data) {
			c.putBuf(f.buf)
			*f = frag{}
			m.idx++
			m.off = 0
		}
	}
	if m.idx < len(m.frags) {
		return n
	}
	c.ready[0] = nil
	c.ready = c.ready[1:]
	if len(c.ready) == 0 {
		c.ready = nil
	}
	c.unread -= m.pkts
	if c.err == nil && !c.closed {
		if wnd := c.recvWindowLocked(); wnd-c.lastAdvWnd >= max(1, c.cfg.Window/4) {
			out.add(c.buildLocked(c.clk.Now(), 0, c.sndNxt, nil))
		}
	}
	return n
}
