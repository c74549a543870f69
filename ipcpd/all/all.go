// Package all lists every IPCP kind this build can run, for the irm
// binary and for tests that re-execute themselves as IPCPs.
package all

import (
	"github.com/ouro-net/ouro/ipcpd"
	"github.com/ouro-net/ouro/ipcpd/eth"
	"github.com/ouro-net/ouro/ipcpd/local"
	"github.com/ouro-net/ouro/ipcpd/tap"
	"github.com/ouro-net/ouro/ipcpd/udp"
	"github.com/ouro-net/ouro/ipcpd/unicast"
)

// Kinds returns the constructor of every IPCP type by name.
func Kinds() ipcpd.Kinds {
	return ipcpd.Kinds{
		"local":   local.New,
		"udp4":    udp.New,
		"udp6":    udp.New,
		"eth-dix": eth.New,
		"tap":     tap.New,
		"unicast": unicast.New,
	}
}
