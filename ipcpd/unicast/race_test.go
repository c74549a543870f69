//go:build race

package unicast_test

const raceEnabled = true
