package frame

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/ouro-net/ouro/lib/namehash"
	"github.com/ouro-net/ouro/lib/qos"
)

// Management messages are the payload of frames sent to MgmtEID. They
// are fixed binary records rather than msgpack: each fits a minimum
// Ethernet frame, decodes without allocation (but for a QoS preset
// name), and a hostile one cannot make the decoder do more than bounds
// checks. They start with a version byte, then a code:
//
//	0  version (Version)
//	1  code
//	2  body:
//	   QueryReq, QueryReply  name hash (16)
//	   AllocReq              seid (2), name hash (16), QoS (see below)
//	   AllocReply            seid (2), deid (2), result (1)
//	   Dealloc               seid (2), deid (2)
//	   Confirm               seid (2), deid (2)
//
// seid is the sender's endpoint id, deid the receiver's. The QoS of an
// allocation request is in the wire form of package qos (qos.AppendWire:
// cube, flags, reserved, peer timeout, and the preset name of at most
// MaxQoSName bytes), the same as in ipcpd/udp. A message must be exactly as long as its code says:
// trailing bytes, unknown codes, unknown flag bits and other versions
// are rejected.
//
// No answer is larger than what caused it: a QueryReply is as long as
// the QueryReq, and an AllocReq (at least 31 bytes) is longer than the
// AllocReply (7) and the Dealloc (6) it can cause together; an
// AllocReply causes at most a Confirm or a Dealloc (6).

// Version is the management protocol version this build speaks (2:
// the requester confirms an accepted flow with Confirm).
const Version = 2

// MaxQoSName bounds the QoS preset name carried in an allocation.
const MaxQoSName = qos.MaxWireName

// Code says what a management message is.
type Code uint8

// Management codes.
const (
	// QueryReq asks, by broadcast, who has a name registered.
	QueryReq Code = 1
	// QueryReply answers a query, unicast to the asker.
	QueryReply Code = 2
	// AllocReq asks the station that has a name for a flow to it.
	AllocReq Code = 3
	// AllocReply accepts (Result OK, with the replier's eid) or refuses.
	AllocReply Code = 4
	// Dealloc ends a flow; the receiver's application reads EOF.
	Dealloc Code = 5
	// Confirm tells the replier that the requester got its OK; a flow
	// never confirmed is ended.
	Confirm Code = 6
)

// String names the code for logs.
func (c Code) String() string {
	switch c {
	case QueryReq:
		return "query"
	case QueryReply:
		return "query-reply"
	case AllocReq:
		return "alloc"
	case AllocReply:
		return "alloc-reply"
	case Dealloc:
		return "dealloc"
	case Confirm:
		return "confirm"
	}
	return fmt.Sprintf("code(%d)", uint8(c))
}

// Result is the outcome of an allocation request.
type Result uint8

// Allocation results.
const (
	// OK means the flow is allocated.
	OK Result = 0
	// NoName means the name is not registered at the replier.
	NoName Result = 1
	// Refused means no process accepted the flow.
	Refused Result = 2
	// Busy means the replier has no endpoint id or allocation slot free.
	Busy Result = 3
)

// String says what the result means, for error messages.
func (r Result) String() string {
	switch r {
	case OK:
		return "ok"
	case NoName:
		return "name not registered there"
	case Refused:
		return "no process accepted the flow"
	case Busy:
		return "peer busy (no free endpoint or allocation slot)"
	}
	return fmt.Sprintf("result(%d)", uint8(r))
}

// Management decoding errors (returned unwrapped, see ErrShort).
var (
	// ErrVersion means the message speaks another protocol version.
	ErrVersion = errors.New("unsupported management protocol version")
	// ErrCode means the message code is unknown.
	ErrCode = errors.New("unknown management message code")
	// ErrMalformed means the message does not have its code's layout.
	ErrMalformed = errors.New("malformed management message")
)

// Mgmt is one management message; which fields matter depends on Code.
type Mgmt struct {
	Code   Code
	Hash   namehash.Hash // QueryReq, QueryReply, AllocReq
	SEID   uint16        // AllocReq, AllocReply, Dealloc, Confirm
	DEID   uint16        // AllocReply, Dealloc, Confirm
	Result Result        // AllocReply
	QoS    qos.Spec      // AllocReq
}

// Len returns the encoded size of m, or -1 for an unknown code.
func (m *Mgmt) Len() int {
	switch m.Code {
	case QueryReq, QueryReply:
		return 2 + namehash.Size
	case AllocReq:
		return 2 + 2 + namehash.Size + qos.WireLen(m.QoS)
	case AllocReply:
		return 2 + 5
	case Dealloc, Confirm:
		return 2 + 4
	}
	return -1
}

// Append encodes m onto b. A QoS name longer than MaxQoSName is cut.
// It fails only for an unknown code.
func (m *Mgmt) Append(b []byte) ([]byte, error) {
	if m.Len() < 0 {
		return b, fmt.Errorf("encode management message: %w: %d", ErrCode, uint8(m.Code))
	}
	b = append(b, Version, byte(m.Code))
	switch m.Code {
	case QueryReq, QueryReply:
		b = append(b, m.Hash[:]...)
	case AllocReq:
		b = binary.BigEndian.AppendUint16(b, m.SEID)
		b = append(b, m.Hash[:]...)
		b = qos.AppendWire(b, m.QoS)
	case AllocReply:
		b = binary.BigEndian.AppendUint16(b, m.SEID)
		b = binary.BigEndian.AppendUint16(b, m.DEID)
		b = append(b, byte(m.Result))
	case Dealloc, Confirm:
		b = binary.BigEndian.AppendUint16(b, m.SEID)
		b = binary.BigEndian.AppendUint16(b, m.DEID)
	}
	return b, nil
}

// DecodeMgmt parses a management message (the payload of a frame to
// MgmtEID). It fails with ErrShort, ErrVersion, ErrCode or ErrMalformed.
func DecodeMgmt(b []byte) (Mgmt, error) {
	var m Mgmt
	if len(b) < 2 {
		return m, ErrShort
	}
	if b[0] != Version {
		return m, ErrVersion
	}
	m.Code = Code(b[1])
	body := b[2:]
	switch m.Code {
	case QueryReq, QueryReply:
		if len(body) != namehash.Size {
			return m, ErrMalformed
		}
		copy(m.Hash[:], body)
	case AllocReq:
		if len(body) < 2+namehash.Size+qos.WireFixedLen {
			return m, ErrMalformed
		}
		m.SEID = binary.BigEndian.Uint16(body)
		copy(m.Hash[:], body[2:])
		q, n, err := qos.DecodeWire(body[2+namehash.Size:])
		if err != nil || n != len(body)-2-namehash.Size {
			return m, ErrMalformed
		}
		m.QoS = q
	case AllocReply:
		if len(body) != 5 {
			return m, ErrMalformed
		}
		m.SEID = binary.BigEndian.Uint16(body)
		m.DEID = binary.BigEndian.Uint16(body[2:])
		m.Result = Result(body[4])
	case Dealloc, Confirm:
		if len(body) != 4 {
			return m, ErrMalformed
		}
		m.SEID = binary.BigEndian.Uint16(body)
		m.DEID = binary.BigEndian.Uint16(body[2:])
	default:
		return m, ErrCode
	}
	return m, nil
}
