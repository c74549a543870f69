package frct

import (
	"errors"
	"testing"
	"time"

	"github.com/ouro-net/ouro/lib/memlink"
)

func TestConfigDefaults(t *testing.T) {
	c, err := Config{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.Clock == nil || c.RTOMin != DefaultRTOMin || c.RTOMax != DefaultRTOMax || c.InitialRTO != DefaultInitialRTO ||
		c.Window != DefaultWindow || c.ReorderBuffer != DefaultWindow || c.MaxMessage != DefaultMaxMessage ||
		c.DelayedACK != DefaultDelayedACK || c.PeerTimeout != DefaultPeerTimeout ||
		c.KeepAlive != DefaultPeerTimeout/4 || c.Linger != DefaultLinger {
		t.Fatalf("defaults: %+v", c)
	}
	c, err = Config{PeerTimeout: 40 * time.Millisecond, RTOMax: 100 * time.Millisecond}.withDefaults()
	if err != nil || c.KeepAlive != 10*time.Millisecond || c.InitialRTO != 100*time.Millisecond {
		t.Fatalf("derived defaults: %+v, %v", c, err)
	}
}

func TestConfigValidation(t *testing.T) {
	for _, c := range []Config{
		{RTOMin: -1},
		{RTOMin: time.Second, RTOMax: time.Millisecond},
		{InitialRTO: time.Microsecond},
		{Window: -1},
		{Window: MaxWindow + 1},
		{Window: 8, ReorderBuffer: 9},
		{MaxMessage: -5},
		{KeepAlive: time.Second, PeerTimeout: time.Second},
	} {
		if _, err := c.withDefaults(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%+v: error %v, want ErrInvalidConfig", c, err)
		}
	}
}

func TestNewRejectsBadLower(t *testing.T) {
	if _, err := New(nil, Config{}); err == nil {
		t.Fatal("nil lower accepted")
	}
	la, lb := memlink.NewPair(memlink.Config{MTU: HeaderLen})
	defer la.Close()
	defer lb.Close()
	if _, err := New(la, Config{}); err == nil {
		t.Fatal("MTU without room for payload accepted")
	}
	if _, err := New(la, Config{Window: -1}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("bad config: %v", err)
	}
}

func TestFlagsString(t *testing.T) {
	if s := (FlagData | FlagAck | FlagFirst).String(); s != "DATA|ACK|FIRST" {
		t.Fatal(s)
	}
	if s := (FlagECE | FlagFIN).String(); s != "FIN|ECE" {
		t.Fatal(s)
	}
	if s := Flags(0).String(); s != "0" {
		t.Fatal(s)
	}
}
