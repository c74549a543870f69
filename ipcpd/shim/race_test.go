//go:build race

package shim_test

const raceEnabled = true
