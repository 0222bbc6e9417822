//go:build race

package e2e

// raceEnabled: these tests run with -race, so the child binary is built with it.
const raceEnabled = true
