package unicast

import "github.com/ouro-net/ouro/ipcpd"

// AddEndpoint stores an up endpoint eid of the loop's IPCP whose far
// end is endpoint remoteEID of member remoteAddr, as Alloc does once
// answered.
func (l *ForwardLoop) AddEndpoint(eid, remoteAddr, remoteEID uint64, f *ipcpd.Flow) {
	l.u.eps.Store(eid, &endpoint{eid: eid, f: f, remoteAddr: remoteAddr, remoteEID: remoteEID})
}
