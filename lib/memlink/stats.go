package memlink

// Stats counts what happened to the packets written by one End.
type Stats struct {
	// Sent counts WritePacket calls that passed the size check.
	Sent uint64
	// Delivered counts packets handed to the peer's ReadPacket.
	Delivered uint64
	// Duplicated counts extra copies injected.
	Duplicated uint64
	// Reordered counts packets held back to be overtaken.
	Reordered uint64
	// DroppedLoss counts packets dropped by random loss.
	DroppedLoss uint64
	// DroppedCut counts packets dropped while the link was cut,
	// including those in flight when Cut was called.
	DroppedCut uint64
	// DroppedQueueFull counts packets that found the queue full.
	DroppedQueueFull uint64
	// DroppedClosed counts packets dropped because the receiving end
	// was closed.
	DroppedClosed uint64
}

// Dropped is the sum of all drop reasons.
func (s Stats) Dropped() uint64 {
	return s.DroppedLoss + s.DroppedCut + s.DroppedQueueFull + s.DroppedClosed
}
