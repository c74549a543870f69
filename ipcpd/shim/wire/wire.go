// Package wire is the management codec of every shim IPCP kind (udp4,
// udp6, eth-dix, tap): the messages that resolve names and allocate and
// deallocate flows. A medium frames a message its own way (udp puts a
// zero endpoint id in front, Ethernet a frame header with endpoint id
// 0); the message itself is the same on all of them. It is pure code
// (no I/O), never panics on hostile input, and decodes without
// allocating (but for a QoS name that is not a preset).
//
// # Messages
//
//	0  version (Version)
//	1  type
//	2  body:
//	   1 query        name hash (16), zero (1)
//	   2 query reply  name hash (16), found (1: 0 or 1)
//	   3 alloc req    src eid (4), name hash (16), mtu (2), port (2),
//	                  QoS (qos.AppendWire: cube, flags, reserved (4),
//	                  peer timeout in ms (4), name length, name of at
//	                  most qos.MaxWireName bytes), zeros up to
//	                  AllocReqLen bytes in all
//	   4 alloc resp   dst eid (4), src eid (4), status (1), mtu (2),
//	                  port (2)
//	   5 dealloc      dst eid (4), src eid (4)
//	   6 dealloc ack  dst eid (4), src eid (4)
//	   7 confirm      dst eid (4), src eid (4)
//
// Integers are big endian; "src" is the sender's endpoint id, "dst" the
// receiver's, and neither is ever 0 where it names a flow end. The mtu
// is the sender's flow MTU (request) or the agreed one (an "ok"): the
// smaller of both ends'. The port is the medium's own field: the udp
// shims carry the sender's data socket port in it (0: none), the
// Ethernet shims send 0. Names travel as namehash.Of(name).
//
// A message must be exactly as long as its type says: trailing bytes,
// unknown types, unknown QoS flags, non-zero padding and other versions
// are rejected, each with its own error, so that a receiver counts them
// apart. The format has one encoding but for the 4 reserved QoS bytes,
// which go as zero and are ignored.
//
// No answer is larger than what caused it: a query is padded to the size
// of its reply, and an alloc request to AllocReqLen bytes, more than all
// that one request can make the responder send unasked ("pending", the
// answer, and the dealloc should the flow never be confirmed); every
// other answer is no larger than the message it answers.
//
// # Versions
//
// Version 4 is the first version that the udp and Ethernet shims share.
// Before it, eth-dix and tap spoke version 2 (16-bit endpoint ids, no
// MTU, no "pending", deallocations unacknowledged) and udp version 3
// (this layout behind its 4-byte zero endpoint id). A message of any
// other version fails with ErrVersion; receivers count it and say in
// their log which version came and which one this build speaks.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/ouro-net/ouro/lib/namehash"
	"github.com/ouro-net/ouro/lib/qos"
)

// Version is the version of the management protocol this build speaks.
const Version = 4

// Sizes of the messages.
const (
	// HeaderLen is the version and the type.
	HeaderLen = 2
	// QueryLen is the size of a query and of its reply.
	QueryLen = HeaderLen + namehash.Size + 1
	// AllocRespLen is the size of an alloc response.
	AllocRespLen = HeaderLen + 4 + 4 + 1 + 2 + 2
	// DeallocLen is the size of a dealloc, a dealloc ack and a confirm.
	DeallocLen = HeaderLen + 4 + 4
	// allocReqFixed is an alloc request without its QoS name.
	allocReqFixed = HeaderLen + 4 + namehash.Size + 2 + 2 + qos.WireFixedLen
	// AllocReqLen is the size an alloc request is padded to (with zeros
	// after the QoS name): at least all one request can make the
	// responder send unasked, "pending", the answer and a dealloc.
	AllocReqLen = 60
	// MaxLen is the largest message.
	MaxLen = max(allocReqFixed+qos.MaxWireName, AllocReqLen)
)

// MinMTU is the smallest MTU an alloc request or an "ok" may carry.
const MinMTU = 512

// Type says what a message is.
type Type uint8

// Message types.
const (
	Query      Type = 1 // who has this name hash?
	QueryReply Type = 2 // I have (or have not) it
	AllocReq   Type = 3 // open a flow to the name hash
	AllocResp  Type = 4 // the answer to an alloc request
	Dealloc    Type = 5 // the flow is gone
	DeallocAck Type = 6 // the dealloc arrived
	Confirm    Type = 7 // the requester got the "ok"
)

var typeNames = [...]string{Query: "query", QueryReply: "query-reply", AllocReq: "alloc-req",
	AllocResp: "alloc-resp", Dealloc: "dealloc", DeallocAck: "dealloc-ack", Confirm: "confirm"}

// String names the type for logs.
func (t Type) String() string {
	if int(t) < len(typeNames) && typeNames[t] != "" {
		return typeNames[t]
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Status is the outcome an alloc response carries.
type Status uint8

// Alloc response outcomes.
const (
	OK         Status = 0 // flow allocated
	Pending    Status = 1 // request received, still looking for an acceptor
	NoName     Status = 2 // name not registered there
	NoAcceptor Status = 3 // no process accepted the flow
	Busy       Status = 4 // the responder's caps are full for now
	Closing    Status = 5 // the responder is shutting down
)

var statusText = [...]string{OK: "ok", Pending: "pending", NoName: "name not registered there",
	NoAcceptor: "no process accepts the flow there", Busy: "too many allocations in progress there",
	Closing: "the remote IPCP is shutting down"}

// String says what the status means, for error messages.
func (s Status) String() string {
	if int(s) < len(statusText) {
		return statusText[s]
	}
	return fmt.Sprintf("unknown refusal (%d)", uint8(s))
}

// Decoding errors, one per drop counter. They are returned unwrapped,
// so that a flood of garbage costs no allocation.
var (
	ErrShort     = errors.New("truncated management message")
	ErrVersion   = errors.New("unsupported management protocol version")
	ErrType      = errors.New("unknown management message type")
	ErrMalformed = errors.New("malformed management message")
)

// Msg is one management message; which fields count depends on Type.
type Msg struct {
	Type   Type
	Hash   namehash.Hash // query, query reply, alloc req
	Found  bool          // query reply
	Src    uint32        // sender's eid: alloc req, alloc resp, dealloc, ack, confirm
	Dst    uint32        // receiver's eid: alloc resp, dealloc, ack, confirm
	MTU    uint16        // alloc req (sender's), alloc resp (agreed)
	Port   uint16        // alloc req, alloc resp: the medium's field (udp: data port)
	Status Status        // alloc resp
	QoS    qos.Spec      // alloc req
}

// Len is the encoded size of m (0 for an unknown type).
func (m *Msg) Len() int {
	switch m.Type {
	case Query, QueryReply:
		return QueryLen
	case AllocReq:
		return max(AllocReqLen, allocReqFixed+qos.WireLen(m.QoS)-qos.WireFixedLen)
	case AllocResp:
		return AllocRespLen
	case Dealloc, DeallocAck, Confirm:
		return DeallocLen
	}
	return 0
}

// Append encodes m onto b. A QoS name longer than qos.MaxWireName is
// cut. With cap(b)-len(b) >= MaxLen it does not allocate. An unknown
// type encodes as its header alone (which receivers reject).
func (m *Msg) Append(b []byte) []byte {
	start := len(b)
	b = append(b, Version, byte(m.Type))
	switch m.Type {
	case Query:
		b = append(b, m.Hash[:]...)
		b = append(b, 0)
	case QueryReply:
		b = append(b, m.Hash[:]...)
		f := byte(0)
		if m.Found {
			f = 1
		}
		b = append(b, f)
	case AllocReq:
		b = binary.BigEndian.AppendUint32(b, m.Src)
		b = append(b, m.Hash[:]...)
		b = binary.BigEndian.AppendUint16(b, m.MTU)
		b = binary.BigEndian.AppendUint16(b, m.Port)
		b = qos.AppendWire(b, m.QoS)
		for len(b)-start < AllocReqLen {
			b = append(b, 0)
		}
	case AllocResp:
		b = binary.BigEndian.AppendUint32(b, m.Dst)
		b = binary.BigEndian.AppendUint32(b, m.Src)
		b = append(b, byte(m.Status))
		b = binary.BigEndian.AppendUint16(b, m.MTU)
		b = binary.BigEndian.AppendUint16(b, m.Port)
	case Dealloc, DeallocAck, Confirm:
		b = binary.BigEndian.AppendUint32(b, m.Dst)
		b = binary.BigEndian.AppendUint32(b, m.Src)
	}
	return b
}

// Decode parses a whole message into m. It fails with ErrShort,
// ErrVersion, ErrType or ErrMalformed; it never panics and, for the QoS
// presets, never allocates.
func (m *Msg) Decode(b []byte) error {
	if len(b) < HeaderLen {
		return ErrShort
	}
	if b[0] != Version {
		return ErrVersion
	}
	*m = Msg{Type: Type(b[1])}
	p := b[HeaderLen:]
	switch m.Type {
	case Query, QueryReply:
		if len(b) != QueryLen {
			return lenErr(len(b), QueryLen)
		}
		copy(m.Hash[:], p)
		switch f := p[namehash.Size]; {
		case f == 1 && m.Type == QueryReply:
			m.Found = true
		case f != 0:
			return ErrMalformed
		}
	case AllocReq:
		if len(b) < AllocReqLen {
			return ErrShort
		}
		m.Src = binary.BigEndian.Uint32(p)
		p = p[4:]
		copy(m.Hash[:], p)
		p = p[namehash.Size:]
		m.MTU = binary.BigEndian.Uint16(p)
		m.Port = binary.BigEndian.Uint16(p[2:])
		p = p[4:]
		q, n, err := qos.DecodeWire(p)
		if err != nil || len(b) != max(AllocReqLen, allocReqFixed+n-qos.WireFixedLen) {
			return ErrMalformed
		}
		for _, c := range p[n:] {
			if c != 0 {
				return ErrMalformed
			}
		}
		m.QoS = q
		if m.Src == 0 || m.MTU < MinMTU {
			return ErrMalformed
		}
	case AllocResp:
		if len(b) != AllocRespLen {
			return lenErr(len(b), AllocRespLen)
		}
		m.Dst = binary.BigEndian.Uint32(p)
		m.Src = binary.BigEndian.Uint32(p[4:])
		m.Status = Status(p[8])
		m.MTU = binary.BigEndian.Uint16(p[9:])
		m.Port = binary.BigEndian.Uint16(p[11:])
		if m.Dst == 0 || (m.Status == OK && (m.Src == 0 || m.MTU < MinMTU)) {
			return ErrMalformed
		}
	case Dealloc, DeallocAck, Confirm:
		if len(b) != DeallocLen {
			return lenErr(len(b), DeallocLen)
		}
		m.Dst = binary.BigEndian.Uint32(p)
		m.Src = binary.BigEndian.Uint32(p[4:])
		if m.Dst == 0 || m.Src == 0 {
			return ErrMalformed
		}
	default:
		return ErrType
	}
	return nil
}

// lenErr tells a short message from one with trailing bytes.
func lenErr(got, want int) error {
	if got < want {
		return ErrShort
	}
	return ErrMalformed
}

// VersionOf returns the version byte of message b (0 if b is empty),
// for the log line about a refused version.
func VersionOf(b []byte) byte {
	if len(b) == 0 {
		return 0
	}
	return b[0]
}
