package main

import (
	"os"
	"testing"

	"github.com/helios-project/infrastructure/pkg/sandbox"
)

// The CLI's local worker confines job commands by re-executing the running
// binary, here the test binary: it must act as the launcher too.
// With HELIOS_TEST_CLI=1 it is the CLI itself, for tests that need a
// process of their own (a pseudo-terminal).
func TestMain(m *testing.M) {
	sandbox.Main()
	if os.Getenv("HELIOS_TEST_CLI") == "1" {
		main()
	}
	os.Exit(m.Run())
}
