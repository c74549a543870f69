package ctrl

import "time"

// Status is an IPCP's description of its layer as data: what
// `irm layer show` renders as text, `--json` prints and the metrics
// endpoint exports. One kind-specific part is set (Unicast, Local or
// Shim); the generic part (Counters, Text) is what a kind without its
// own part fills (the shims render their own text as well).
type Status struct {
	// At is when the IPCP took the snapshot (durations such as an
	// adjacency's time up are rendered relative to it).
	At time.Time `msgpack:"at" json:"at"`
	// Unicast is set by unicast IPCPs.
	Unicast *UnicastStatus `msgpack:"unicast,omitempty" json:"unicast,omitempty"`
	// Local is set by local IPCPs.
	Local *LocalStatus `msgpack:"local,omitempty" json:"local,omitempty"`
	// Shim is set by shim IPCPs (udp4, udp6, eth-dix, tap), whose text
	// stays their own (LayerInfo.Text).
	Shim *ShimStatus `msgpack:"shim,omitempty" json:"shim,omitempty"`
	// Counters are named counters of a kind without its own part.
	Counters map[string]uint64 `msgpack:"counters,omitempty" json:"counters,omitempty"`
	// Process describes the IPCP's process.
	Process ProcessStatus `msgpack:"process" json:"process"`
}

// ProcessStatus describes an IPCP's process.
type ProcessStatus struct {
	PID        int    `msgpack:"pid" json:"pid"`
	Goroutines int    `msgpack:"goroutines" json:"goroutines"`
	HeapBytes  uint64 `msgpack:"heap" json:"heap_bytes"`
	// Flows is the number of flows the IPCP serves to applications.
	Flows int `msgpack:"flows" json:"flows"`
}

// LocalStatus describes a local IPCP.
type LocalStatus struct {
	// Names are the names bound in the layer.
	Names []string `msgpack:"names" json:"names"`
	// Flows is the number of flows set up and not yet ended.
	Flows int `msgpack:"flows" json:"flows"`
}

// UnicastStatus describes a unicast layer as one member sees it.
type UnicastStatus struct {
	Config      UnicastConfig    `msgpack:"config" json:"config"`
	Members     []Member         `msgpack:"members" json:"members"`
	Adjacencies []Adjacency      `msgpack:"adjs" json:"adjacencies"`
	Routes      []Route          `msgpack:"routes" json:"routes"`
	Counters    UnicastCounters  `msgpack:"counters" json:"counters"`
	Directory   []DirectoryEntry `msgpack:"dir" json:"directory"`
}

// UnicastConfig is the layer configuration and this member's address.
type UnicastConfig struct {
	// Address is this member's address as the layer prints it (hex of
	// AddrSize bytes); Addr is the number.
	Address         string        `msgpack:"address" json:"address"`
	Addr            uint64        `msgpack:"addr" json:"addr"`
	Routing         string        `msgpack:"routing" json:"routing"`
	AddrSize        int           `msgpack:"addr_size" json:"addr_size"`
	EIDSize         int           `msgpack:"eid_size" json:"eid_size"`
	TTL             int           `msgpack:"ttl" json:"ttl"`
	HelloInterval   time.Duration `msgpack:"hello" json:"hello_interval_ns"`
	HelloMultiplier int           `msgpack:"hello_mult" json:"hello_multiplier"`
	HoldDown        time.Duration `msgpack:"holddown" json:"holddown_ns"`
	Damping         time.Duration `msgpack:"damping" json:"damping_ns"`
	// Security is "secret" for a layer that admits only holders of its
	// secret (bootstrap ... secret FILE), else "open".
	Security string `msgpack:"security" json:"security"`
	// EncryptRequired: every flow of the layer must be encrypted end to
	// end (bootstrap ... encrypt required).
	EncryptRequired bool `msgpack:"enc_req,omitempty" json:"encrypt_required"`
}

// Member is one member of a unicast layer.
type Member struct {
	Address string `msgpack:"address" json:"address"`
	Addr    uint64 `msgpack:"addr" json:"addr"`
	// IPCP is the member's IPCP name ("?" when only routing knows it).
	IPCP  string   `msgpack:"ipcp" json:"ipcp"`
	Self  bool     `msgpack:"self" json:"self"`
	Names []string `msgpack:"names" json:"names"`
	// Links are the adjacencies the member announces in routing.
	Links []Link `msgpack:"links" json:"links"`
}

// Link is one announced adjacency: its far end and its cost.
type Link struct {
	Neighbor string `msgpack:"neighbor" json:"neighbor"`
	Addr     uint64 `msgpack:"addr" json:"addr"`
	Cost     uint32 `msgpack:"cost" json:"cost"`
}

// Adjacency is one adjacency of this member with its lower flow.
type Adjacency struct {
	ID       uint64 `msgpack:"id" json:"id"`
	Peer     string `msgpack:"peer" json:"peer"`
	Address  string `msgpack:"address" json:"address"`
	PeerAddr uint64 `msgpack:"peer_addr" json:"peer_addr"`
	// Lower is the lower layer the flow runs in.
	Lower string `msgpack:"lower" json:"lower"`
	// Comp is what the adjacency carries: "dt", "mgmt" or "dt+mgmt".
	Comp string `msgpack:"comp" json:"comp"`
	Cost uint32 `msgpack:"cost" json:"cost"`
	Up   bool   `msgpack:"up" json:"up"`
	// Since is when the adjacency came up.
	Since time.Time `msgpack:"since" json:"since"`
	// Counters of the lower flow.
	PacketsIn     uint64 `msgpack:"pin" json:"packets_in"`
	PacketsOut    uint64 `msgpack:"pout" json:"packets_out"`
	BytesIn       uint64 `msgpack:"bin" json:"bytes_in"`
	BytesOut      uint64 `msgpack:"bout" json:"bytes_out"`
	DropNoRoute   uint64 `msgpack:"d_noroute" json:"drop_no_route"`
	DropTTL       uint64 `msgpack:"d_ttl" json:"drop_ttl"`
	DropMalformed uint64 `msgpack:"d_malformed" json:"drop_malformed"`
	DropQueueFull uint64 `msgpack:"d_queue" json:"drop_queue_full"`
	ECNMarked     uint64 `msgpack:"ecn" json:"ecn_marked"`
	// Sealed says the lower flow is sealed under the layer secret;
	// AuthFailures counts its frames dropped because they failed to
	// open (forged, corrupted, truncated, stray handshake messages) and
	// Replayed those seen before or older than the replay window.
	Sealed       bool   `msgpack:"sealed,omitempty" json:"sealed"`
	AuthFailures uint64 `msgpack:"auth_fail,omitempty" json:"auth_failures"`
	Replayed     uint64 `msgpack:"replayed,omitempty" json:"replayed"`
}

// State is "up" or "down".
func (a Adjacency) State() string {
	if a.Up {
		return "up"
	}
	return "down"
}

// Drops is the total of the adjacency's drops.
func (a Adjacency) Drops() uint64 {
	return a.DropNoRoute + a.DropTTL + a.DropMalformed + a.DropQueueFull
}

// Route is one destination of the routing table.
type Route struct {
	Dest string `msgpack:"dest" json:"dest"`
	Addr uint64 `msgpack:"addr" json:"addr"`
	// IPCP names the destination (its address when unknown).
	IPCP string `msgpack:"ipcp" json:"ipcp"`
	Cost uint64 `msgpack:"cost" json:"cost"`
	// NextHops and Alternates name the neighbours (loop-free
	// alternates are used when every next hop fails).
	NextHops   []string `msgpack:"nh" json:"next_hops"`
	Alternates []string `msgpack:"alt" json:"alternates"`
	// Flows are the adjacencies the forwarding table uses.
	Flows []RouteFlow `msgpack:"flows" json:"flows"`
}

// RouteFlow is an adjacency a route forwards over.
type RouteFlow struct {
	Adj  uint64 `msgpack:"adj" json:"adj"`
	Peer string `msgpack:"peer" json:"peer"`
}

// DirectoryEntry is the names one member registered.
type DirectoryEntry struct {
	Origin string   `msgpack:"origin" json:"origin"`
	Names  []string `msgpack:"names" json:"names"`
}

// UnicastCounters are the counters of a unicast IPCP.
type UnicastCounters struct {
	Forwarded  uint64 `msgpack:"fwd" json:"forwarded"`
	Delivered  uint64 `msgpack:"local" json:"delivered"`
	NoRoute    uint64 `msgpack:"noroute" json:"no_route"`
	TTLExpired uint64 `msgpack:"ttl" json:"ttl_expired"`
	Malformed  uint64 `msgpack:"malformed" json:"malformed"`
	NoEndpoint uint64 `msgpack:"noep" json:"no_endpoint"`

	MgmtSent      uint64 `msgpack:"m_sent" json:"mgmt_sent"`
	MgmtResent    uint64 `msgpack:"m_resent" json:"mgmt_resent"`
	MgmtAcked     uint64 `msgpack:"m_acked" json:"mgmt_acked"`
	MgmtAbandoned uint64 `msgpack:"m_abandoned" json:"mgmt_abandoned"`

	FARepeated        uint64 `msgpack:"fa_rep" json:"fa_repeated"`
	FARepeatsAnswered uint64 `msgpack:"fa_ans" json:"fa_repeats_answered"`
	FARefused         uint64 `msgpack:"fa_refused" json:"fa_refused"`
	FADropped         uint64 `msgpack:"fa_dropped" json:"fa_dropped"`
	IncomingFlows     int    `msgpack:"in_flows" json:"incoming_flows"`
	IncomingMembers   int    `msgpack:"in_members" json:"incoming_members"`
	IncomingCap       int    `msgpack:"in_cap" json:"incoming_cap"`
	IncomingPerMember int    `msgpack:"in_per" json:"incoming_per_member"`

	AdjUp         uint64    `msgpack:"adj_up" json:"adjacencies_up"`
	AdjDown       uint64    `msgpack:"adj_down" json:"adjacencies_down"`
	Withdrawals   uint64    `msgpack:"withdrawals" json:"withdrawals"`
	LastFailover  time.Time `msgpack:"last_failover" json:"last_failover"`
	SPFRuns       uint64    `msgpack:"spf" json:"spf_runs"`
	LastSPF       time.Time `msgpack:"last_spf" json:"last_spf"`
	LSUsIn        uint64    `msgpack:"lsu_in" json:"lsus_in"`
	LSUsStale     uint64    `msgpack:"lsu_stale" json:"lsus_stale"`
	LSUsMalformed uint64    `msgpack:"lsu_malformed" json:"lsus_malformed"`

	// SPFTime is how long the SPF runs took together, LastSPFTime the
	// last one (real time of the computation).
	SPFTime     time.Duration `msgpack:"spf_time" json:"spf_time_ns"`
	LastSPFTime time.Duration `msgpack:"last_spf_time" json:"last_spf_time_ns"`

	RoutingOwnNewer   uint64 `msgpack:"r_own_newer" json:"routing_own_newer"`
	RoutingFlushes    uint64 `msgpack:"r_flushes" json:"routing_flushes"`
	RoutingRestarts   uint64 `msgpack:"r_restarts" json:"routing_restarts"`
	RoutingPurged     uint64 `msgpack:"r_purged" json:"routing_purged"`
	DirOwnNewer       uint64 `msgpack:"d_own_newer" json:"directory_own_newer"`
	DirFlushes        uint64 `msgpack:"d_flushes" json:"directory_flushes"`
	AddrConflicts     uint64 `msgpack:"addr_conflicts" json:"address_conflicts"`
	HandshakesRefused uint64 `msgpack:"hs_refused" json:"handshakes_refused"`
	EnrollRefused     uint64 `msgpack:"enroll_refused" json:"enrollments_refused"`
	LSUsRefused       uint64 `msgpack:"lsu_refused" json:"lsus_refused"`
	DirRefused        uint64 `msgpack:"dir_refused" json:"directory_refused"`

	// Path bending: label changes the IPCP stamped for its applications'
	// flows, and packets or bend records with a label out of range.
	Bends     uint64 `msgpack:"bends" json:"path_bends"`
	BadLabels uint64 `msgpack:"bad_labels" json:"bad_labels_dropped"`

	// Authenticated layers: joiners that came without the secret (a
	// plain flow) and were refused; key exchanges of strangers refused
	// by the IPCP's listeners, by reason (wrong MAC, replayed or stale
	// hello, malformed first message, evicted to make room) and in all.
	AuthRefused         uint64 `msgpack:"auth_refused,omitempty" json:"joiners_refused_no_secret"`
	HandshakesAuth      uint64 `msgpack:"hs_auth,omitempty" json:"handshakes_auth_failed"`
	HandshakesReplayed  uint64 `msgpack:"hs_replayed,omitempty" json:"handshakes_replayed"`
	HandshakesMalformed uint64 `msgpack:"hs_malformed,omitempty" json:"handshakes_malformed"`
	HandshakesEvicted   uint64 `msgpack:"hs_evicted,omitempty" json:"handshakes_evicted"`
	HandshakesFailed    uint64 `msgpack:"hs_failed,omitempty" json:"handshakes_failed"`
}

// AdjacenciesTo returns the adjacencies to the peer called name.
func (s *UnicastStatus) AdjacenciesTo(name string) []Adjacency {
	var out []Adjacency
	for _, a := range s.Adjacencies {
		if a.Peer == name {
			out = append(out, a)
		}
	}
	return out
}

// Route returns the route to the member called name (by IPCP name or
// address) and whether there is one.
func (s *UnicastStatus) Route(name string) (Route, bool) {
	for _, r := range s.Routes {
		if r.IPCP == name || r.Dest == name {
			return r, true
		}
	}
	return Route{}, false
}

// Member returns the member called name (by IPCP name or address).
func (s *UnicastStatus) Member(name string) (Member, bool) {
	for _, m := range s.Members {
		if m.IPCP == name || m.Address == name {
			return m, true
		}
	}
	return Member{}, false
}

// Self returns this member.
func (s *UnicastStatus) Self() Member {
	for _, m := range s.Members {
		if m.Self {
			return m
		}
	}
	return Member{}
}

// ShimStatus describes a shim IPCP (udp4, udp6, eth-dix, tap: one
// engine, ipcpd/shim) as data; its text is the IPCP's own (LayerInfo.Text).
type ShimStatus struct {
	// Address is the IPCP's own address on its medium (IP:port, MAC).
	Address string `msgpack:"addr" json:"address"`
	// MTU is the flow MTU it offers.
	MTU int `msgpack:"mtu" json:"mtu"`
	// Peers are the configured peers (udp).
	Peers []string `msgpack:"peers,omitempty" json:"peers,omitempty"`
	// Carrier is the medium's link state.
	Carrier bool `msgpack:"carrier" json:"carrier"`
	// Names are the names registered here.
	Names []string `msgpack:"names" json:"names"`
	// Resolved are the cached answers of queries (at most 32).
	Resolved []ShimResolved `msgpack:"resolved" json:"resolved"`
	// Limits are the caps on incoming flows and their use.
	Limits ShimLimits `msgpack:"limits" json:"limits"`
	// FlowCount is the number of flows in every state; Flows lists at
	// most 32 of them, lowest endpoint ids first.
	FlowCount int        `msgpack:"nflows" json:"flow_count"`
	Flows     []ShimFlow `msgpack:"flows" json:"flows"`
	// Counters are the engine's and the medium's counters by the names
	// the text shows.
	Counters map[string]uint64 `msgpack:"counters" json:"counters"`
}

// ShimResolved is one cached answer: name is at Addr for TTL more.
type ShimResolved struct {
	Name string        `msgpack:"name" json:"name"`
	Addr string        `msgpack:"addr" json:"addr"`
	TTL  time.Duration `msgpack:"ttl" json:"ttl_ns"`
}

// ShimLimits are the caps on incoming flows (in total and per source)
// and how many flows and pending ones there are.
type ShimLimits struct {
	Flows             int `msgpack:"flows" json:"flows"`
	Pending           int `msgpack:"pending" json:"pending"`
	MaxFlows          int `msgpack:"maxflows" json:"max_flows"`
	MaxFlowsPerPeer   int `msgpack:"maxflowspp" json:"max_flows_per_peer"`
	MaxPending        int `msgpack:"maxpending" json:"max_pending"`
	MaxPendingPerPeer int `msgpack:"maxpendingpp" json:"max_pending_per_peer"`
	// Sources is how many sources hold incoming flows.
	Sources int `msgpack:"sources" json:"sources"`
}

// ShimFlow is one flow of a shim.
type ShimFlow struct {
	LocalEID    uint32 `msgpack:"leid" json:"local_eid"`
	RemoteEID   uint32 `msgpack:"reid" json:"remote_eid"`
	Peer        string `msgpack:"peer" json:"peer"`
	Name        string `msgpack:"name" json:"name"`
	QoS         string `msgpack:"qos" json:"qos"`
	MTU         int    `msgpack:"mtu" json:"mtu"`
	State       string `msgpack:"state" json:"state"`
	Direct      bool   `msgpack:"direct,omitempty" json:"direct,omitempty"`
	Unconfirmed bool   `msgpack:"unconfirmed,omitempty" json:"unconfirmed,omitempty"`
	PktsIn      uint64 `msgpack:"pin" json:"pkts_in"`
	BytesIn     uint64 `msgpack:"bin" json:"bytes_in"`
	PktsOut     uint64 `msgpack:"pout" json:"pkts_out"`
	BytesOut    uint64 `msgpack:"bout" json:"bytes_out"`
	Drops       uint64 `msgpack:"drops" json:"drops"`
}
