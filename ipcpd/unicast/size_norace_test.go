//go:build !race

package unicast_test

// transferMiB is the reliable transfer size across the cut.
const transferMiB = 100
