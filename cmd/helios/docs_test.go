package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// The README and the Makefile say what the commands do (issue 13, point 8).
func TestDocsMatchTheCommands(t *testing.T) {
	read := func(path string) string {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	readme, makefile := read("../../README.md"), read("../../Makefile")
	checks := []struct {
		ok   bool
		what string
	}{
		{!strings.Contains(readme, "Node.js 18"), "the README asks for Node.js 18, which the pinned CDK no longer supports"},
		{strings.Contains(readme, "Node.js 20 or newer") && strings.Contains(makefile, ">= 20"), "the README and make deps-node agree on Node.js 20+"},
		{regexp.MustCompile(`(?m)^synth:.* package layer`).MatchString(makefile), "make synth builds the packages and the layer it needs"},
		{!regexp.MustCompile(`chunks/\d{6}\.\d+\.mp4`).MatchString(readme), "the README shows a segment key of the old format"},
		{strings.Contains(readme, "FUNCTION_URL=$(aws cloudformation describe-stacks"), "the README says where FUNCTION_URL comes from"},
		{!strings.Contains(readme, "what `helios render --emit-job` writes"), "the README presents --emit-job as this CLI's"},
		{strings.Contains(readme, "--restart") && strings.Contains(readme, "--version"), "the README lists --restart and --version"},
	}
	for _, c := range checks {
		if !c.ok {
			t.Error(c.what)
		}
	}
}
