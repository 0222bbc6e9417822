//go:build race

package presence

// raceEnabled makes the heavy pinger tests use smaller sizes under the race
// detector (docs/decisions.md §13).
const raceEnabled = true
