//go:build race

package views

// raceEnabled: the race detector slows the pure-Go SQLite down about
// tenfold, so the largest logs shrink (see replayEqualsLiveSize).
const raceEnabled = true
