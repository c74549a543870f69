package frct

import (
	"errors"
	"fmt"
	"net"
	"os"
)

// ErrPeerGone fails Read and Write when the peer fell silent for longer
// than Config.PeerTimeout or the lower flow went away under the
// connection.
var ErrPeerGone = errors.New("peer gone")

// ErrUnacked is returned by Close when data or the FIN was still
// unacknowledged when Close stopped waiting (Config.Linger passed, or
// the connection failed): the peer may not have received all of it.
var ErrUnacked = errors.New("unacknowledged data at close")

// errWriteShut is returned by Write after CloseWrite or Close.
var errWriteShut = fmt.Errorf("frct: write side shut down: %w", net.ErrClosed)

// Addr is the placeholder address of an FRCT connection: flows have no
// addresses, only names, which the flow package knows.
type Addr struct{}

// Network returns "frct".
func (Addr) Network() string { return "frct" }

// String returns "frct".
func (Addr) String() string { return "frct" }

// opError wraps err as net.Conn implementations do, so that
// os.ErrDeadlineExceeded keeps its Timeout() and errors.Is works.
func opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "frct", Addr: Addr{}, Err: err}
}

func timeoutError(op string) error { return opError(op, os.ErrDeadlineExceeded) }
