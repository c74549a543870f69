// Package udp is a shim IPCP kind (work in progress).
package udp

import (
	"errors"

	"github.com/ouro-net/ouro/ipcpd"
)

// New is a placeholder constructor until the kind lands.
func New(h *ipcpd.Host) (ipcpd.IPCP, error) { return nil, errors.New("udp IPCP not implemented yet") }
