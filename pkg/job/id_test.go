package job_test

import (
	"strings"
	"testing"

	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/layout"
)

func TestValidID(t *testing.T) {
	for id, want := range map[string]bool{
		"a": true, "0": true, "job-1": true, "a.b": true, "a_b": true, "a..b": true,
		"": false, ".": false, "..": false, ".a": false, "_a": false, "-a": false, "a/b": false,
		"a b": false, "a\n": false, "é": false, strings.Repeat("a", 128): true, strings.Repeat("a", 129): false,
	} {
		if got := layout.ValidID(id); got != want {
			t.Errorf("ValidID(%q) = %v, want %v", id, got, want)
		}
	}
}

// Every message refusing an id states the rule in the same words.
func TestIDRuleInMessages(t *testing.T) {
	const bad = "-bad id"
	spec := nativeSpec()
	spec.ID = bad
	spec.Normalize()
	tests := []struct {
		name string
		err  error
		path string
	}{
		{"spec", spec.Validate(testAllow), "id"},
		{"worker job", job.WorkerJob{JobID: bad, Chunk: job.Chunk{Count: 1}, Attempt: 1, Command: "ffmpeg", OutputFile: "o.mp4"}.Validate(), "jobId"},
		{"stitch request", job.StitchRequest{JobID: bad}.Validate(), "jobId"},
	}
	for _, tt := range tests {
		found := false
		for _, p := range problemsOf(t, tt.err) {
			if p.Path == tt.path {
				found = true
				if want := "must be " + layout.IDRule + `; got "` + bad + `"`; p.Message != want {
					t.Errorf("%s: %s: %q, want %q", tt.name, p.Path, p.Message, want)
				}
			}
		}
		if !found {
			t.Errorf("%s: no problem at %s in %v", tt.name, tt.path, tt.err)
		}
	}
}
