// Package layer defines what a unicast layer is as a whole: its
// configuration (defaults, validation, bootstrap parameters), how member
// addresses are derived, the directory that maps names to addresses,
// and the flow-allocation messages IPCPs of the layer exchange.
package layer

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Config is a layer's configuration, fixed at bootstrap and handed to
// every member at enrollment.
type Config struct {
	Name string `msgpack:"name"`
	// AddrSize and EIDSize are the widths (bytes) of addresses and
	// endpoint ids in the data-transfer header.
	AddrSize int `msgpack:"addr"`
	EIDSize  int `msgpack:"eid"`
	// TTL is the initial time to live of data packets.
	TTL uint8 `msgpack:"ttl"`
	// Routing is the routing policy: ecmp, lfa or link-state.
	Routing string `msgpack:"routing"`
	// HelloInterval and HelloMultiplier set adjacency keepalive: a
	// lower flow silent for interval × multiplier is declared dead.
	HelloInterval   time.Duration `msgpack:"hello"`
	HelloMultiplier int           `msgpack:"mult"`
	// HoldDown batches routing events before SPF runs.
	HoldDown time.Duration `msgpack:"holddown"`
	// Damping delays the return of a recovered link.
	Damping time.Duration `msgpack:"damping"`
	// RefreshInterval and MaxAge govern link-state and directory
	// refresh and ageing.
	RefreshInterval time.Duration `msgpack:"refresh"`
	MaxAge          time.Duration `msgpack:"maxage"`
	// Secret says the layer admits only members that prove they hold
	// its secret (the bootstrap parameter secret FILE). The secret
	// itself is never part of the configuration.
	Secret bool `msgpack:"secret,omitempty"`
	// Encrypt says every flow of the layer must be encrypted end to end
	// (the bootstrap parameter encrypt required): members refuse to
	// allocate or accept a flow whose QoS does not ask for it.
	Encrypt bool `msgpack:"encrypt,omitempty"`
}

// Defaults returns the configuration of a layer called name.
func Defaults(name string) Config {
	return Config{
		Name: name, AddrSize: 4, EIDSize: 8, TTL: 60, Routing: "ecmp",
		HelloInterval: 10 * time.Millisecond, HelloMultiplier: 3,
		HoldDown: 5 * time.Millisecond, Damping: time.Second,
		RefreshInterval: 30 * time.Second, MaxAge: 90 * time.Second,
	}
}

// ParamNames lists the bootstrap parameters a unicast layer takes.
const ParamNames = "addr, eid, ttl, routing, address, hello, multiplier, holddown, damping, refresh, maxage, secret, encrypt"

// FromParams applies bootstrap parameters to the defaults. It returns
// the configuration and an explicit address if one was given (0 if not).
func FromParams(name string, params map[string]string) (Config, uint64, error) {
	c := Defaults(name)
	var explicit uint64
	for k, v := range params {
		var err error
		switch k {
		case "addr":
			c.AddrSize, err = strconv.Atoi(v)
		case "eid":
			c.EIDSize, err = strconv.Atoi(v)
		case "ttl":
			var n uint64
			n, err = strconv.ParseUint(v, 10, 8)
			c.TTL = uint8(n)
		case "routing":
			c.Routing = strings.ToLower(v)
		case "address":
			explicit, err = strconv.ParseUint(v, 0, 64)
		case "hello":
			c.HelloInterval, err = parseDuration(v)
		case "multiplier":
			c.HelloMultiplier, err = strconv.Atoi(v)
		case "holddown":
			c.HoldDown, err = parseDuration(v)
		case "damping":
			c.Damping, err = parseDuration(v)
		case "refresh":
			c.RefreshInterval, err = parseDuration(v)
		case "maxage":
			c.MaxAge, err = parseDuration(v)
		case "encrypt":
			if v != "required" {
				return c, 0, fmt.Errorf("parameter encrypt: bad value %q (want required)", v)
			}
			c.Encrypt = true
		case "secret":
			// The file is read by the unicast IPCP (SecretParam);
			// here it only marks the layer.
			c.Secret = v != ""
		default:
			return c, 0, fmt.Errorf("unknown unicast parameter %q (want %s)", k, ParamNames)
		}
		if err != nil {
			return c, 0, fmt.Errorf("parameter %s: bad value %q", k, v)
		}
	}
	if err := c.Validate(); err != nil {
		return c, 0, err
	}
	if explicit != 0 && explicit > c.MaxAddr() {
		return c, 0, fmt.Errorf("address %d does not fit in %d bytes", explicit, c.AddrSize)
	}
	return c, explicit, nil
}

// parseDuration takes a Go duration or a bare number of milliseconds.
func parseDuration(s string) (time.Duration, error) {
	if n, err := strconv.ParseFloat(s, 64); err == nil {
		return time.Duration(n * float64(time.Millisecond)), nil
	}
	return time.ParseDuration(s)
}

// Validate refuses impossible configurations with a clear message.
func (c Config) Validate() error {
	switch {
	case c.Name == "":
		return fmt.Errorf("layer name is empty")
	case c.AddrSize < 1 || c.AddrSize > 8:
		return fmt.Errorf("addr must be 1 to 8 bytes, not %d", c.AddrSize)
	case c.EIDSize < 1 || c.EIDSize > 8:
		return fmt.Errorf("eid must be 1 to 8 bytes, not %d", c.EIDSize)
	case c.TTL == 0:
		return fmt.Errorf("ttl must be at least 1")
	case c.Routing != "ecmp" && c.Routing != "lfa" && c.Routing != "link-state":
		return fmt.Errorf("routing must be ecmp, lfa or link-state, not %q", c.Routing)
	case c.HelloInterval < time.Millisecond:
		return fmt.Errorf("hello interval must be at least 1ms, not %v", c.HelloInterval)
	case c.HelloMultiplier < 2:
		return fmt.Errorf("hello multiplier must be at least 2, not %d", c.HelloMultiplier)
	case c.HoldDown < 0 || c.Damping < 0:
		return fmt.Errorf("holddown and damping must not be negative")
	case c.RefreshInterval <= 0 || c.MaxAge <= c.RefreshInterval:
		return fmt.Errorf("maxage (%v) must exceed refresh (%v) and both be positive", c.MaxAge, c.RefreshInterval)
	}
	return nil
}

// MaxAddr is the largest address the layer's address width holds.
func (c Config) MaxAddr() uint64 {
	if c.AddrSize >= 8 {
		return ^uint64(0)
	}
	return 1<<(8*uint(c.AddrSize)) - 1
}

// MaxEID is the largest endpoint id.
func (c Config) MaxEID() uint64 {
	if c.EIDSize >= 8 {
		return ^uint64(0)
	}
	return 1<<(8*uint(c.EIDSize)) - 1
}

// DeriveAddress returns the address of IPCP ipcp in the layer for a
// salt: the first AddrSize bytes of SHA-256(layer, ipcp, salt), never 0.
func (c Config) DeriveAddress(ipcp string, salt uint32) uint64 {
	for {
		h := sha256.New()
		h.Write([]byte(c.Name))
		h.Write([]byte{0})
		h.Write([]byte(ipcp))
		var s [4]byte
		binary.BigEndian.PutUint32(s[:], salt)
		h.Write(s[:])
		sum := h.Sum(nil)
		var a uint64
		for i := 0; i < c.AddrSize; i++ {
			a = a<<8 | uint64(sum[i])
		}
		if a != 0 {
			return a
		}
		salt++
	}
}

// PickAddress derives the first address for ipcp that no member in use
// holds, bumping the salt on every collision.
func (c Config) PickAddress(ipcp string, inUse map[uint64]bool) (uint64, uint32, error) {
	for salt := uint32(0); salt < 1<<16; salt++ {
		a := c.DeriveAddress(ipcp, salt)
		if !inUse[a] {
			return a, salt, nil
		}
	}
	return 0, 0, fmt.Errorf("no free address for %s in %d-byte space", ipcp, c.AddrSize)
}

// FormatAddr renders an address as fixed-width hex for logs and tables.
func (c Config) FormatAddr(a uint64) string { return fmt.Sprintf("%0*x", 2*c.AddrSize, a) }
