package shim_test

import (
	"context"
	"errors"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ouro-net/ouro/internal/testenv"
	"github.com/ouro-net/ouro/ipcpd"
	"github.com/ouro-net/ouro/ipcpd/eth/frame"
	"github.com/ouro-net/ouro/ipcpd/shim"
	"github.com/ouro-net/ouro/ipcpd/shim/wire"
	"github.com/ouro-net/ouro/lib/clock"
	"github.com/ouro-net/ouro/lib/pipe"
	"github.com/ouro-net/ouro/lib/qos"
)

func TestMain(m *testing.M) {
	testenv.MaybeRunIPCP()
	code := m.Run()
	testenv.CleanupBinaries()
	os.Exit(code)
}

const etype = frame.DefaultEtherType

// hub is an in-memory Ethernet segment: every frame written by one port
// reaches every other port (stations filter by destination, as on a
// shared medium). A cut port neither sends nor receives.
type hub struct {
	mu    sync.Mutex
	ports []*port
}

type port struct {
	h      *hub
	in     chan []byte
	cut    atomic.Bool
	closed chan struct{}
	once   sync.Once
}

func (h *hub) port() *port {
	p := &port{h: h, in: make(chan []byte, 8192), closed: make(chan struct{})}
	h.mu.Lock()
	h.ports = append(h.ports, p)
	h.mu.Unlock()
	return p
}

func (p *port) ReadFrame(b []byte) (int, error) {
	select {
	case f := <-p.in:
		return copy(b, f), nil
	case <-p.closed:
		return 0, net.ErrClosed
	}
}

func (p *port) WriteFrame(b []byte) error {
	select {
	case <-p.closed:
		return net.ErrClosed
	default:
	}
	if p.cut.Load() {
		return nil
	}
	p.h.mu.Lock()
	defer p.h.mu.Unlock()
	for _, q := range p.h.ports {
		if q == p || q.cut.Load() {
			continue
		}
		select {
		case q.in <- append([]byte(nil), b...):
		default: // the segment drops what a station cannot take
		}
	}
	return nil
}

func (p *port) Close() error {
	p.once.Do(func() { close(p.closed) })
	return nil
}

// next returns the next frame the port receives (for sniffing ports
// without an engine).
func (p *port) next(t *testing.T) []byte {
	t.Helper()
	select {
	case f := <-p.in:
		return f
	case <-time.After(5 * time.Second):
		t.Fatal("no frame on the segment")
		return nil
	}
}

// station is an engine on the hub with a fake IRMd: arriving flows are
// handed to the test through accepted.
type station struct {
	eng      *shim.Ether
	port     *port
	mac      frame.MAC
	accepted chan *pipe.Pipe
	refuse   atomic.Bool
	ids      atomic.Uint64
	// hold, if set before the engine sees requests, makes the fake
	// IRMd wait for it to close (a slow IRMd).
	hold chan struct{}
}

func mac(last byte) frame.MAC { return frame.MAC{0x02, 0, 0, 0, 0, last} }

func newStation(t testing.TB, h *hub, last byte, clk clock.Clock, timers shim.Timers) *station {
	t.Helper()
	s := &station{port: h.port(), mac: mac(last), accepted: make(chan *pipe.Pipe, 64)}
	arrive := func(ctx context.Context, name string, q qos.Spec, mtu int) (*ipcpd.Flow, error) {
		if s.hold != nil {
			select {
			case <-s.hold:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		if s.refuse.Load() {
			return nil, errors.New("nobody listens")
		}
		ipcpEnd, appEnd, err := pipe.Pair()
		if err != nil {
			return nil, err
		}
		select {
		case s.accepted <- appEnd:
		default:
			appEnd.Close()
		}
		return &ipcpd.Flow{ID: s.ids.Add(1), Name: name, QoS: q, Pipe: ipcpEnd}, nil
	}
	eng, err := shim.NewEther(shim.EtherConfig{
		Kind:      "test",
		Dev:       shim.Device{Name: "hub0", Index: 1, MAC: s.mac, MTU: 1500, Carrier: true, Medium: s.port},
		EtherType: etype, Arrive: arrive, Clock: clk, Timers: timers,
	})
	if err != nil {
		t.Fatal(err)
	}
	s.eng = eng
	t.Cleanup(func() { eng.Close() })
	return s
}

// alloc allocates a flow to name and returns the application's end.
func (s *station) alloc(ctx context.Context, name string) (*pipe.Pipe, int, error) {
	ipcpEnd, appEnd, err := pipe.Pair()
	if err != nil {
		return nil, 0, err
	}
	f := &ipcpd.Flow{ID: s.ids.Add(1), Name: name, QoS: qos.Raw(), Pipe: ipcpEnd}
	mtu, err := s.eng.Alloc(ctx, f)
	if err != nil {
		ipcpEnd.Close()
		appEnd.Close()
		return nil, 0, err
	}
	return appEnd, mtu, nil
}

func (s *station) acceptOne(t *testing.T) *pipe.Pipe {
	t.Helper()
	select {
	case p := <-s.accepted:
		t.Cleanup(func() { p.Close() })
		return p
	case <-time.After(5 * time.Second):
		t.Fatal("no flow arrived")
		return nil
	}
}

// readKind reads one record from an application end.
func readKind(t *testing.T, p *pipe.Pipe) (pipe.Kind, []byte, error) {
	t.Helper()
	buf := make([]byte, 2048)
	p.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, k, err := p.Read(buf)
	return k, buf[:n], err
}

func expectData(t *testing.T, p *pipe.Pipe, want string) {
	t.Helper()
	k, b, err := readKind(t, p)
	if err != nil || k != pipe.Data || string(b) != want {
		t.Fatalf("read = %v %q %v, want data %q", k, b, err, want)
	}
}

func expectKind(t *testing.T, p *pipe.Pipe, want pipe.Kind) {
	t.Helper()
	k, b, err := readKind(t, p)
	if err != nil || k != want {
		t.Fatalf("read = %v %q %v, want %v", k, b, err, want)
	}
}

// eventually polls cond (a condition, not a duration, is asserted).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 500 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("never: %s", what)
}

func flowCount(s *station) int { return s.eng.Flows() }

// noLeak checks that the goroutine count comes back to base.
func noLeak(t *testing.T, base int) {
	t.Helper()
	for range 500 {
		if runtime.NumGoroutine() <= base {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	buf := make([]byte, 1<<20)
	t.Fatalf("goroutines: %d, want <= %d\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
}

// quick are timers for tests on the wall clock that wait for silence.
func quick() shim.Timers {
	return shim.Timers{QueryTimeout: 100 * time.Millisecond, QueryRetry: 30 * time.Millisecond}
}

// mgmtFrame builds a management frame; an alloc request or an "ok"
// without an MTU gets 1400.
func mgmtFrame(dst, src frame.MAC, m wire.Msg) []byte {
	if m.MTU == 0 && (m.Type == wire.AllocReq || m.Type == wire.AllocResp && m.Status == wire.OK) {
		m.MTU = 1400
	}
	return frame.Append(nil, frame.Header{Dst: dst, Src: src, EtherType: etype}, m.Append(nil))
}

// decodeMgmt parses the management message of a frame's payload.
func decodeMgmt(p []byte) (wire.Msg, error) {
	var m wire.Msg
	err := m.Decode(p)
	return m, err
}
