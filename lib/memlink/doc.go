// Package memlink provides in-memory packet links for tests: NewPair
// returns two connected endpoints that carry whole packets (one packet
// per ReadPacket, never merged or split) and can lose, duplicate,
// reorder, delay and cut them.
//
// Impairments are drawn from a math/rand source per direction seeded
// from Config.Seed, so a single-threaded writer sees the same fate for
// the same packet sequence on every run. Delay and reordering go
// through the injected clock.Clock, so a clock.Fake drives them in
// virtual time.
//
// Reordering holds a packet back until the next packet in the same
// direction overtakes it, or until Config.ReorderHold passes on the
// clock, whichever comes first. Each receive queue is bounded by
// Config.QueueLen: a packet that finds it full is dropped and counted.
//
// memlink starts no goroutines. With a real clock, Delay and
// ReorderHold use time.AfterFunc timers, which are stopped by Close.
package memlink
