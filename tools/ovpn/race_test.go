//go:build race

package main

// raceArgs builds the ovpn binary the way the test binary was built.
var raceArgs = []string{"-race"}
