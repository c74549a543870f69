package flow

import (
	"context"
	"net"
)

// NetListener adapts l to net.Listener, so servers written for the net
// package (net/http, gRPC, ...) serve over flows unchanged.
func (l *Listener) NetListener() net.Listener { return netListener{l} }

type netListener struct{ l *Listener }

func (n netListener) Accept() (net.Conn, error) { return n.l.AcceptConn() }
func (n netListener) Close() error              { return n.l.Close() }
func (n netListener) Addr() net.Addr            { return n.l.Addr() }

// Dialer allocates flows for code that dials by network and address,
// such as http.Transport.DialContext. The address is the name to
// allocate to; a ":port" suffix (added by URL-based clients) is ignored,
// since flows are allocated to names, not ports.
type Dialer struct {
	// QoS of the flows dialed (for a stream protocol, qos.Reliable()).
	QoS QoS
	// Options select the IRMd and layer.
	Options []Option
}

// DialContext allocates a flow to the name in address.
func (d Dialer) DialContext(ctx context.Context, _, address string) (net.Conn, error) {
	name := address
	if host, _, err := net.SplitHostPort(address); err == nil {
		name = host
	}
	return Alloc(ctx, name, d.QoS, d.Options...)
}
