package main

import (
	"os"
	"testing"

	"github.com/helios-project/infrastructure/pkg/sandbox"
)

// The CLI's local worker confines job commands by re-executing the running
// binary, here the test binary: it must act as the launcher too.
func TestMain(m *testing.M) {
	sandbox.Main()
	os.Exit(m.Run())
}
