package fsemu

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them: every
// ESLServer goroutine must end with Close.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
