package routing

import "fmt"

// Policy selects what SPF keeps per destination.
type Policy uint8

// Routing policies, as named on the command line (`routing ecmp|lfa|link-state`).
const (
	// PolicyECMP keeps every equal-cost first hop (the default).
	PolicyECMP Policy = iota
	// PolicyLinkState keeps a single first hop: the lowest neighbour
	// address among the equal-cost ones.
	PolicyLinkState
	// PolicyLFA keeps every equal-cost first hop plus the loop-free
	// alternates of RFC 5286 (basic condition).
	PolicyLFA
)

// String returns the policy's command-line name.
func (p Policy) String() string {
	switch p {
	case PolicyECMP:
		return "ecmp"
	case PolicyLinkState:
		return "link-state"
	case PolicyLFA:
		return "lfa"
	}
	return fmt.Sprintf("policy(%d)", uint8(p))
}

// ParsePolicy returns the policy named s ("ecmp", "link-state" or "lfa");
// the empty string means the default, ecmp.
func ParsePolicy(s string) (Policy, error) {
	switch s {
	case "", "ecmp":
		return PolicyECMP, nil
	case "link-state":
		return PolicyLinkState, nil
	case "lfa":
		return PolicyLFA, nil
	}
	return 0, fmt.Errorf("routing: unknown policy %q (want ecmp, link-state or lfa)", s)
}

func (p Policy) valid() bool { return p <= PolicyLFA }
