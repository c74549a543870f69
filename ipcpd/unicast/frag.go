package unicast

import (
	"sync"
	"time"

	"github.com/ouro-net/ouro/enroll"
)

// Management messages larger than a lower flow's MTU.
//
// A lower flow refuses a frame above its MTU, and several management
// messages grow with the layer: the enrollment response (the whole
// directory and the addresses in use), the directory snapshot a new
// neighbour gets, the link-state database sync, and single records
// (a member's directory entry with many names, an LSU with many links).
// So every one is sized to the lower flow it leaves on:
//
//   - directory updates are packed, whole entries at a time, into
//     frames that fit (layer.SplitDir); each frame is applied on its own;
//   - routing splits its floods and syncs at the room of the frames to
//     each neighbour (routing.Config.MaxMessageTo = mgmtRoom);
//   - a single record still too large for one frame travels in parts
//     (enroll.Split), each part a sequenced, acknowledged management
//     frame of its own, reassembled by the receiver within mgmtPartLimits;
//   - the enrollment response is one logical reply: it is sent in parts
//     that fit the enrollment flow (serveEnroll, enroll.Frames) and
//     reassembled by the joiner (enroll.Exchange).

// mgmtPartLimits bound what neighbours can make this IPCP hold in
// incomplete management messages: 1 MiB per message (an LSU of
// routing.MaxLinks links, a directory entry of layer.MaxDirNamesPerEntry
// names fit), 4 messages per neighbour, 16 messages and 4 MiB in all,
// 15 s to complete (the acknowledged frames are sent again for about
// that long).
var mgmtPartLimits = enroll.ReassemblyLimits{
	MaxBytes:     enroll.MaxMessage,
	MaxPending:   16,
	MaxPerSource: 4,
	MaxTotal:     4 << 20,
	Timeout:      15 * time.Second,
}

// mgmtParts is the sending id and the receiving reassembly of
// management messages in parts.
type mgmtParts struct {
	mu   sync.Mutex
	next uint32
	r    *enroll.Reassembler
}

// frameRoom is the largest management payload one frame on a carries
// (0: the flow sets no bound).
func frameRoom(a *adj) int {
	if m := a.f.MTU(); m > 0 {
		return max(m-1-mgmtSeqLen, 1)
	}
	return 0
}

// mgmtRoom is the largest management payload every management flow to
// peer carries in one frame (0: no bound known). It is routing's
// MaxMessageTo: lock-free, as the router calls it with its lock held.
func (u *IPCP) mgmtRoom(peer uint64) int {
	room := 0
	for _, a := range *u.adjs.Load() {
		if a.peer == peer && a.carriesMgmt() {
			if r := frameRoom(a); r > 0 && (room == 0 || r < room) {
				room = r
			}
		}
	}
	return room
}

// sendMgmtFit sends a management payload to peer (through via if
// given), in parts if it exceeds room (0: no bound). It reports
// whether every first copy left.
func (u *IPCP) sendMgmtFit(peer uint64, kind byte, payload []byte, via *adj, room int) bool {
	if room <= 0 || len(payload) <= room {
		return u.sendMgmt(peer, kind, payload, via)
	}
	u.parts.mu.Lock()
	u.parts.next++
	id := u.parts.next
	u.parts.mu.Unlock()
	parts, err := enroll.Split(id, payload, room)
	if err != nil {
		u.log.Warn("management message not sent", "kind", kind, "bytes", len(payload), "error", err)
		return false
	}
	ok := true
	for _, p := range parts {
		ok = u.sendMgmt(peer, kind, p, via) && ok
	}
	return ok
}

// joinMgmt returns the management payload to act on: payload itself if
// it is whole, the reassembled message once its last part came, or
// false while parts are missing or the part was refused (counted as
// malformed).
func (u *IPCP) joinMgmt(a *adj, payload []byte) ([]byte, bool) {
	if !enroll.IsPart(payload) {
		return payload, true
	}
	u.parts.mu.Lock()
	if u.parts.r == nil {
		u.parts.r = enroll.NewReassembler(mgmtPartLimits)
	}
	msg, err := u.parts.r.Add(a.peer, payload, u.clk.Now())
	u.parts.mu.Unlock()
	if err != nil {
		u.stats.malformed.Add(1)
		u.log.Debug("management part refused", "from", a.peerName, "error", err)
		return nil, false
	}
	return msg, msg != nil
}
