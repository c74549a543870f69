package shim

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"

	"github.com/ouro-net/ouro/ipcpd/eth/frame"
	"github.com/ouro-net/ouro/lib/clock"
	"github.com/ouro-net/ouro/lib/pipe"
)

// EtherConfig is what an Ether needs.
type EtherConfig struct {
	// Kind names the IPCP type in messages ("eth-dix", "tap").
	Kind string
	// Dev is the opened device; the Ether owns its Medium.
	Dev Device
	// EtherType is the EtherType of every frame sent and accepted.
	EtherType uint16
	// Arrive hands incoming flows to the IRMd.
	Arrive ArriveFunc
	// Log receives the log lines (nil: discard).
	Log hclog.Logger
	// Clock drives every timer (nil: the wall clock).
	Clock clock.Clock
	// Timers override the defaults.
	Timers Timers
}

// EtherCounters count the receive drops that only an Ethernet segment
// has.
type EtherCounters struct {
	OtherEtherType atomic.Uint64 // not our EtherType (a TAP sees everything)
	NotForUs       atomic.Uint64 // unicast to another station
	Own            atomic.Uint64 // our own frame came back
	BadSource      atomic.Uint64 // group address as source
}

// Ether is the engine on an Ethernet segment, the medium of the
// eth-dix and tap kinds: it frames management messages and data (see
// package frame), reads the device in one goroutine and runs one
// writer goroutine per flow. The embedded Engine does the protocol.
type Ether struct {
	*Engine[frame.MAC]
	// Medium are the drops only Ethernet has.
	Medium EtherCounters

	cfg   EtherConfig
	mac   frame.MAC
	etype uint16
	med   Medium
	done  chan struct{} // closed by Close
	once  sync.Once
	rd    sync.WaitGroup
}

// NewEther starts the engine on cfg.Dev: it takes over the medium and
// starts reading. Close stops it.
func NewEther(cfg EtherConfig) (*Ether, error) {
	if cfg.Dev.Medium == nil {
		return nil, errors.New("shim: no medium")
	}
	mtu := min(cfg.Dev.MTU-frame.Overhead, frame.MaxPayload)
	x := &Ether{cfg: cfg, mac: cfg.Dev.MAC, etype: cfg.EtherType, med: cfg.Dev.Medium, done: make(chan struct{})}
	eng, err := New(Config[frame.MAC]{
		Kind: cfg.Kind, Link: x, MTU: mtu, MaxEID: maxEID, Headroom: frame.HeaderLen, Broadcasting: true, Broadcast: frame.Broadcast(),
		Carrier: cfg.Dev.Carrier, Arrive: cfg.Arrive, Log: cfg.Log, Clock: cfg.Clock, Timers: cfg.Timers,
		Less: macLess,
	})
	if err != nil {
		return nil, fmt.Errorf("%s: device %s (MTU %d, shim header %d bytes): %w", cfg.Kind, cfg.Dev.Name,
			cfg.Dev.MTU, frame.Overhead, err)
	}
	x.Engine = eng
	x.rd.Add(1)
	go x.readLoop()
	return x, nil
}

// maxEID is the largest endpoint id on Ethernet: the frame header has
// 16 bits for it.
const maxEID = 0xFFFF

func macLess(x, y frame.MAC) bool { return string(x[:]) < string(y[:]) }

// MAC returns the station's address.
func (x *Ether) MAC() frame.MAC { return x.mac }

// readLoop reads frames until the medium is closed.
func (x *Ether) readLoop() {
	defer x.rd.Done()
	buf := make([]byte, 1<<16)
	failures := 0
	for {
		n, err := x.med.ReadFrame(buf)
		if err != nil {
			select {
			case <-x.done:
				return
			default:
			}
			if errors.Is(err, os.ErrClosed) || errors.Is(err, net.ErrClosed) {
				return
			}
			if errors.Is(err, io.EOF) || errors.Is(err, unix.ENETDOWN) || errors.Is(err, unix.EINTR) {
				// An empty read, or the socket's one-time report that
				// the link went down (the carrier watcher tells flows).
				continue
			}
			x.Counters.RxErrors.Add(1)
			if failures++; failures == 1 || failures%1000 == 0 {
				x.log.Warn("read failed", "device", x.cfg.Dev.Name, "error", err, "failures", failures)
			}
			if failures > 10 {
				// A persistent error: do not spin.
				select {
				case <-x.done:
					return
				case <-time.After(10 * time.Millisecond):
				}
			}
			continue
		}
		failures = 0
		x.Input(buf[:n])
	}
}

// Input processes one received frame. The reader calls it for every
// frame; tests may call it too. It does not keep b.
func (x *Ether) Input(b []byte) {
	c, m := &x.Counters, &x.Medium
	c.FramesIn.Add(1)
	c.BytesIn.Add(uint64(len(b)))
	if et, ok := frame.EtherType(b); !ok {
		c.Short.Add(1)
		return
	} else if et != x.etype {
		m.OtherEtherType.Add(1)
		return
	}
	h, payload, err := frame.Decode(b)
	if err != nil {
		c.Short.Add(1)
		return
	}
	switch {
	case h.Src == x.mac:
		m.Own.Add(1)
		return
	case h.Src.IsMulticast():
		m.BadSource.Add(1)
		return
	}
	if h.EID == frame.MgmtEID {
		if h.Dst != x.mac && !h.Dst.IsBroadcast() {
			m.NotForUs.Add(1)
			return
		}
		x.Mgmt(h.Src, payload)
		return
	}
	if h.Dst != x.mac {
		m.NotForUs.Add(1)
		return
	}
	if fl := x.Data(uint32(h.EID), h.Src); fl != nil {
		x.Deliver(fl, payload)
	}
}

// SendMgmt sends one management message to dst (Link).
func (x *Ether) SendMgmt(dst frame.MAC, msg []byte) error {
	frame.PutHeader(msg, frame.Header{Dst: dst, Src: x.mac, EtherType: x.etype, EID: frame.MgmtEID}, len(msg)-frame.HeaderLen)
	return x.sendFrame(msg)
}

// sendFrame writes one frame, counting it. The error is the medium's,
// not wrapped: on the data path a failing link must not allocate per
// frame.
func (x *Ether) sendFrame(b []byte) error {
	if err := x.med.WriteFrame(b); err != nil {
		x.Counters.TxErrors.Add(1)
		return err
	}
	return nil
}

// Offer offers nothing: Ethernet flows have no medium field (Link).
func (x *Ether) Offer(*Flow[frame.MAC]) uint16 { return 0 }

// Agreed has nothing to set up (Link).
func (x *Ether) Agreed(*Flow[frame.MAC], uint16) uint16 { return 0 }

// Release has nothing to free (Link).
func (x *Ether) Release(*Flow[frame.MAC]) {}

// Run sends the application's packets to the peer until the flow ends
// (Link). The buffer leaves room for the header in front of the
// packet, so nothing is copied.
func (x *Ether) Run(fl *Flow[frame.MAC]) {
	buf := make([]byte, frame.HeaderLen+fl.MTU+1)
	hdr := frame.Header{Dst: fl.Peer, Src: x.mac, EtherType: x.etype, EID: uint16(fl.Remote)}
	f := fl.App
	for {
		n, k, err := f.Pipe.Read(buf[frame.HeaderLen:])
		if err != nil {
			if errors.Is(err, io.ErrShortBuffer) && !fl.Ending() {
				x.TooBig(fl)
				continue
			}
			return
		}
		switch k {
		case pipe.Data:
			if n > fl.MTU {
				x.TooBig(fl)
				continue
			}
			f.PktsIn.Add(1)
			f.BytesIn.Add(uint64(n))
			frame.PutHeader(buf, hdr, n)
			if x.sendFrame(buf[:frame.HeaderLen+n]) != nil {
				f.Drops.Add(1)
				continue
			}
			x.Counters.TxData.Add(1)
			x.Counters.TxBytes.Add(uint64(frame.HeaderLen + n))
		case pipe.Dealloc:
			return
		}
	}
}

// Show describes the device, then the engine, for `irm layer show`.
func (x *Ether) Show() string {
	d := x.cfg.Dev
	head := fmt.Sprintf("%s IPCP on %s\n  device   %s (index %d), MAC %s, EtherType 0x%04x, device MTU %d, flow MTU %d\n",
		x.cfg.Kind, d.Name, d.Name, d.Index, x.mac, x.etype, d.MTU, x.MTU())
	if d.Info != "" {
		head += fmt.Sprintf("  medium   %s\n", d.Info)
	}
	return x.Engine.Show(head, x.mediumCounters())
}

// mediumCounters names the drops only Ethernet has.
func (x *Ether) mediumCounters() []Counter {
	m := &x.Medium
	return []Counter{{"drop-other-ethertype", &m.OtherEtherType},
		{"drop-not-for-us", &m.NotForUs}, {"drop-own", &m.Own}, {"drop-bad-source", &m.BadSource}}
}

// Close deallocates every flow (telling the peers), closes the medium
// and waits for every goroutine.
func (x *Ether) Close() error {
	var err error
	x.once.Do(func() {
		err = x.Engine.Close()
		close(x.done)
		if cerr := x.med.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("%s: close %s: %w", x.cfg.Kind, x.cfg.Dev.Name, cerr))
		}
		x.rd.Wait()
	})
	return err
}
