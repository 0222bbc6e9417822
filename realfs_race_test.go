//go:build race

package main

// raceEnabled makes the volume scenarios use smaller sizes under the race
// detector, which slows sipsilo and the emulator several times over.
const raceEnabled = true
