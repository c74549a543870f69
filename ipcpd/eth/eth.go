// Package eth is a shim IPCP kind (work in progress).
package eth

import (
	"errors"

	"github.com/ouro-net/ouro/ipcpd"
)

// New is a placeholder constructor until the kind lands.
func New(h *ipcpd.Host) (ipcpd.IPCP, error) { return nil, errors.New("eth IPCP not implemented yet") }
