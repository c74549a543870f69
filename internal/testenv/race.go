//go:build race

package testenv

func raceFlag() []string { return []string{"-race"} }
