package udp

import (
	"encoding/binary"
	"errors"

	"github.com/ouro-net/ouro/lib/namehash"
	"github.com/ouro-net/ouro/lib/qos"
)

// Frame layout (see the package documentation).
const (
	// eidLen is the size of an endpoint id, and so of the data header.
	eidLen = 4
	// version is the management protocol version this build speaks
	// (2: allocation carries the data ports; 3: queries and alloc
	// requests are padded to the size of their answers, and the
	// requester confirms an accepted flow).
	version = 3
	// mgmtHdrLen is eid 0, version and type.
	mgmtHdrLen = eidLen + 2
	// maxQoSName bounds the QoS preset name carried in an alloc request.
	maxQoSName = qos.MaxWireName
	// maxMgmtLen is the largest management frame.
	maxMgmtLen = max(allocReqFixed+maxQoSName, allocReqMin)
)

// Fixed lengths of the management frames.
const (
	queryLen      = mgmtHdrLen + namehash.Size + 1 // one zero byte of padding
	queryReplyLen = mgmtHdrLen + namehash.Size + 1
	allocReqFixed = mgmtHdrLen + eidLen + namehash.Size + 2 + 2 + qos.WireFixedLen
	allocRespLen  = mgmtHdrLen + 2*eidLen + 1 + 2 + 2
	deallocLen    = mgmtHdrLen + 2*eidLen
	deallocAckLen = deallocLen
	confirmLen    = deallocLen
	// allocReqMin is the size an alloc request is padded to (with
	// zeros after the QoS name): at least everything one request can
	// make the responder send, "pending", the answer and, should the
	// flow never be confirmed, a dealloc (see the package doc).
	allocReqMin = 64 // >= 2*allocRespLen + deallocLen
)

// msgType is the type byte of a management frame.
type msgType uint8

// Management frame types.
const (
	tQuery      msgType = 1 // who has this name hash?
	tQueryReply msgType = 2 // I have (or have not) it
	tAllocReq   msgType = 3 // open a flow to the name hash
	tAllocResp  msgType = 4 // the answer to an alloc request
	tDealloc    msgType = 5 // the flow is gone
	tDeallocAck msgType = 6 // the dealloc arrived
	tConfirm    msgType = 7 // the requester got the "ok"
)

func (t msgType) String() string {
	switch t {
	case tQuery:
		return "query"
	case tQueryReply:
		return "query-reply"
	case tAllocReq:
		return "alloc-req"
	case tAllocResp:
		return "alloc-resp"
	case tDealloc:
		return "dealloc"
	case tDeallocAck:
		return "dealloc-ack"
	case tConfirm:
		return "confirm"
	}
	return "unknown"
}

// status is the outcome carried by an alloc response.
type status uint8

// Alloc response outcomes.
const (
	stOK         status = 0 // flow allocated
	stPending    status = 1 // request received, still looking for an acceptor
	stNoName     status = 2 // name not registered here
	stNoAcceptor status = 3 // no process accepted the flow
	stBusy       status = 4 // too many allocations in progress
	stClosing    status = 5 // the IPCP is shutting down
)

func (s status) String() string {
	switch s {
	case stOK:
		return "ok"
	case stPending:
		return "pending"
	case stNoName:
		return "name not registered there"
	case stNoAcceptor:
		return "no process accepts the flow there"
	case stBusy:
		return "too many allocations in progress there"
	case stClosing:
		return "the remote IPCP is shutting down"
	}
	return "unknown refusal"
}

// Decoding errors, one per drop counter.
var (
	errShort     = errors.New("truncated frame")
	errVersion   = errors.New("unknown management version")
	errType      = errors.New("unknown management type")
	errMalformed = errors.New("malformed management frame")
)

// msg is a decoded management frame; which fields count depends on typ.
type msg struct {
	typ    msgType
	hash   namehash.Hash // query, query reply, alloc req
	found  bool          // query reply
	src    uint32        // sender's eid: alloc req, alloc resp, dealloc, ack
	dst    uint32        // receiver's eid: alloc resp, dealloc, ack
	mtu    uint16        // alloc req (sender's), alloc resp (agreed)
	dport  uint16        // alloc req, alloc resp: the sender's data socket port (0: none)
	status status        // alloc resp
	qos    qos.Spec      // alloc req
}

// putDataHeader writes the data header (the receiver's eid) into b.
func putDataHeader(b []byte, eid uint32) { binary.BigEndian.PutUint32(b, eid) }

// splitFrame returns the eid of a frame and what follows it; eid 0 means
// a management frame, whose payload is the whole of b.
func splitFrame(b []byte) (eid uint32, payload []byte, err error) {
	if len(b) < eidLen {
		return 0, nil, errShort
	}
	eid = binary.BigEndian.Uint32(b)
	return eid, b[eidLen:], nil
}

// encode appends m as a management frame to b[:0] and returns it. With
// cap(b) >= maxMgmtLen it does not allocate.
func (m *msg) encode(b []byte) []byte {
	b = append(b[:0], 0, 0, 0, 0, version, byte(m.typ))
	switch m.typ {
	case tQuery:
		b = append(b, m.hash[:]...)
		b = append(b, 0)
	case tQueryReply:
		b = append(b, m.hash[:]...)
		f := byte(0)
		if m.found {
			f = 1
		}
		b = append(b, f)
	case tAllocReq:
		b = binary.BigEndian.AppendUint32(b, m.src)
		b = append(b, m.hash[:]...)
		b = binary.BigEndian.AppendUint16(b, m.mtu)
		b = binary.BigEndian.AppendUint16(b, m.dport)
		b = qos.AppendWire(b, m.qos)
		for len(b) < allocReqMin {
			b = append(b, 0)
		}
	case tAllocResp:
		b = binary.BigEndian.AppendUint32(b, m.dst)
		b = binary.BigEndian.AppendUint32(b, m.src)
		b = append(b, byte(m.status))
		b = binary.BigEndian.AppendUint16(b, m.mtu)
		b = binary.BigEndian.AppendUint16(b, m.dport)
	case tDealloc, tDeallocAck, tConfirm:
		b = binary.BigEndian.AppendUint32(b, m.dst)
		b = binary.BigEndian.AppendUint32(b, m.src)
	}
	return b
}

// decode parses a whole management frame (eid 0 included) into m. It
// never panics and, for the QoS presets, never allocates.
func (m *msg) decode(b []byte) error {
	if len(b) < mgmtHdrLen {
		return errShort
	}
	if binary.BigEndian.Uint32(b) != 0 {
		return errMalformed
	}
	if b[4] != version {
		return errVersion
	}
	*m = msg{typ: msgType(b[5])}
	p := b[mgmtHdrLen:]
	switch m.typ {
	case tQuery:
		if len(b) != queryLen {
			return lenErr(len(b), queryLen)
		}
		copy(m.hash[:], p)
		if p[namehash.Size] != 0 {
			return errMalformed
		}
	case tQueryReply:
		if len(b) != queryReplyLen {
			return lenErr(len(b), queryReplyLen)
		}
		copy(m.hash[:], p)
		switch p[namehash.Size] {
		case 0:
		case 1:
			m.found = true
		default:
			return errMalformed
		}
	case tAllocReq:
		if len(b) < allocReqMin {
			return errShort
		}
		m.src = binary.BigEndian.Uint32(p)
		p = p[eidLen:]
		copy(m.hash[:], p)
		p = p[namehash.Size:]
		m.mtu = binary.BigEndian.Uint16(p)
		m.dport = binary.BigEndian.Uint16(p[2:])
		p = p[4:]
		q, n, err := qos.DecodeWire(p)
		if err != nil || len(b) != max(allocReqMin, allocReqFixed+n-qos.WireFixedLen) {
			return errMalformed
		}
		for _, c := range p[n:] {
			if c != 0 {
				return errMalformed
			}
		}
		m.qos = q
		if m.src == 0 || m.mtu < minMTU {
			return errMalformed
		}
	case tAllocResp:
		if len(b) != allocRespLen {
			return lenErr(len(b), allocRespLen)
		}
		m.dst = binary.BigEndian.Uint32(p)
		m.src = binary.BigEndian.Uint32(p[4:])
		m.status = status(p[8])
		m.mtu = binary.BigEndian.Uint16(p[9:])
		m.dport = binary.BigEndian.Uint16(p[11:])
		if m.dst == 0 || (m.status == stOK && (m.src == 0 || m.mtu < minMTU)) {
			return errMalformed
		}
	case tDealloc, tDeallocAck, tConfirm:
		if len(b) != deallocLen {
			return lenErr(len(b), deallocLen)
		}
		m.dst = binary.BigEndian.Uint32(p)
		m.src = binary.BigEndian.Uint32(p[4:])
		if m.dst == 0 || m.src == 0 {
			return errMalformed
		}
	default:
		return errType
	}
	return nil
}

// lenErr tells a short frame from one with trailing bytes.
func lenErr(got, want int) error {
	if got < want {
		return errShort
	}
	return errMalformed
}
