//go:build race

package unicast_test

// transferMiB is the reliable transfer size: smaller under the race
// detector, whose IPCP processes run several times slower.
const transferMiB = 16
