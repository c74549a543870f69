// Package all lists every IPCP kind this build can run, for the irm
// binary and for tests that re-execute themselves as IPCPs.
package all

import (
	"github.com/ouro-net/ouro/ipcpd"
	"github.com/ouro-net/ouro/ipcpd/local"
)

// Kinds returns the constructor of every IPCP type by name.
func Kinds() ipcpd.Kinds {
	return ipcpd.Kinds{
		"local": local.New,
	}
}
