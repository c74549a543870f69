package unicast

import (
	"github.com/hashicorp/go-hclog"

	"github.com/ouro-net/ouro/ipcpd"
	"github.com/ouro-net/ouro/layer"
	"github.com/ouro-net/ouro/lib/clock"
)

// DirMember is a unicast IPCP alone in a layer of its own on a virtual
// clock, for the directory refresh test.
type DirMember struct{ u *IPCP }

// NewDirMember starts member name at addr in a layer with cfg, on clk,
// its refresh jitter drawn from rnd.
func NewDirMember(clk *clock.Fake, rnd func() float64, cfg layer.Config, name string, addr uint64) (*DirMember, error) {
	ip, err := New(&ipcpd.Host{Name: name, Type: "unicast", Log: hclog.NewNullLogger()})
	if err != nil {
		return nil, err
	}
	u := ip.(*IPCP)
	u.clk, u.arq, u.rnd = clk, newMgmtARQ(clk), rnd
	if err := u.start(cfg, addr, nil, nil); err != nil {
		return nil, err
	}
	return &DirMember{u}, nil
}

// Own is the member's directory entry as it floods it.
func (m *DirMember) Own() layer.DirEntry { return m.u.dir.Own() }

// Close stops the member.
func (m *DirMember) Close() { m.u.Close() }
