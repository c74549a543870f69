// Package perf is the traffic protocol and the statistics behind the
// operf and ocbr tools and the bench harness: a sender writes numbered,
// timestamped packets of a given size, as fast as the flow takes them
// or paced at a rate, and the receiver counts what arrives and reports
// it back over the same flow, once per interval and at the end.
//
// It runs over any packet-preserving net.Conn (an ouro flow, a
// connected UDP socket) and uses nothing but the public flow API.
//
// # Protocol
//
// Every packet starts with a type byte. Data packets are
// [type][seq:8][sent unix ns:8] padded to the packet size, so the
// smallest is HeaderSize bytes. Control packets carry a version byte
// after the type, and a run identifier chosen by the client:
//
//	hello   client -> server: run, size, rate, duration, report interval, both ways
//	ack     server -> client: run (the server is an operf server and is counting)
//	report  server -> client: run, interval counts and running totals
//	end     client -> server: run, packets sent; answered by a final report
//
// Control packets may be lost on raw flows: the client repeats hello
// and end until they are answered, and the server answers every copy.
//
// # Counting
//
// The receiver counts loss as gaps in the sequence numbers; a packet
// older than the highest seen is counted late and fills one gap. At the
// end the sender's count is exact: lost = sent - received. One-way
// delay uses the sender's timestamp, so it means something only when
// both ends share a clock (one machine).
package perf
