package udp

import (
	"net/netip"
	"time"
)

// What a stranger can make this IPCP hold is capped by an
// admit.Admission keyed by source IP:port, with the defaults of package
// admit (see "Limits" in the package documentation).

// ArriveTimeout bounds the IRMd's search for an acceptor.
const ArriveTimeout = 8 * time.Second

func addrLess(x, y netip.AddrPort) bool { return x.Compare(y) < 0 }
