package job_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/joberr"
	"github.com/helios-project/infrastructure/pkg/layout"
)

func TestDecodeNull(t *testing.T) {
	_, err := job.Decode(strings.NewReader(" null "))
	var ve *joberr.ValidationError
	if !errors.As(err, &ve) || !strings.Contains(ve.Error(), "expected a JSON object") {
		t.Errorf("Decode(null) = %v, want a validation error", err)
	}
}

func TestIsRetryableNil(t *testing.T) {
	if joberr.IsRetryable(nil) {
		t.Error("IsRetryable(nil) = true")
	}
}

// A plan from a spec that passed validation never overflows.
func TestPlanAfterValidateIsBounded(t *testing.T) {
	s := &job.Spec{ID: "x", Metadata: job.Metadata{TotalFrames: 300, FPS: 30, Width: 8, Height: 8},
		Command: "ffmpeg", Args: []string{"{output}"}, FramesPerChunk: 1 << 62}
	s.Normalize()
	if err := s.Validate(job.Allowlist{"ffmpeg"}); err == nil {
		t.Fatalf("a framesPerChunk of 2^62 validated; Plan would make %d chunks", len(s.Plan()))
	}
}

func TestRejectsRiskySpecs(t *testing.T) {
	base := func() *job.Spec {
		s := &job.Spec{ID: "x", Metadata: job.Metadata{TotalFrames: 30, FPS: 30, Width: 8, Height: 8},
			Command: "ffmpeg", Args: []string{"{output}"}, FramesPerChunk: 10}
		return s
	}
	tests := []struct {
		name string
		edit func(*job.Spec)
		want string
	}{
		{"gconv", func(s *job.Spec) { s.Env = map[string]string{"GCONV_PATH": "."} }, "env.GCONV_PATH: may not be set by a job"},
		{"proxy", func(s *job.Spec) { s.Env = map[string]string{"https_proxy": "http://evil"} }, "env.https_proxy: may not be set by a job"},
		{"locale path", func(s *job.Spec) { s.Env = map[string]string{"LOCPATH": "."} }, "env.LOCPATH: may not be set by a job"},
		{"lowercase helios", func(s *job.Spec) { s.Env = map[string]string{"helios_x": "1"} }, "may not be set by a job"},
		{"NUL in env", func(s *job.Spec) { s.Env = map[string]string{"TZ": "a\x00b"} }, "env.TZ: must not contain a NUL byte"},
		{"NUL in args", func(s *job.Spec) { s.Args = []string{"a\x00b", "{output}"} }, "args[0]: must not contain a NUL byte"},
		{"huge args", func(s *job.Spec) { s.Args = []string{strings.Repeat("x", job.MaxCommandBytes), "{output}"} }, "args: and env together are"},
		{"huge backoff", func(s *job.Spec) {
			s.Retry.InitialBackoff.Duration, s.Retry.MaxBackoff.Duration = 100000*time.Hour, 100000*time.Hour
		}, "backoffs must be at most 10m0s"},
	}
	for _, tt := range tests {
		s := base()
		tt.edit(s)
		s.Normalize()
		err := s.Validate(job.Allowlist{"ffmpeg"})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
}

// A segment key cannot smuggle quotes or newlines into the concat list.
func TestSegmentKeysAreStrict(t *testing.T) {
	for _, key := range []string{
		"renders/j/chunks/000001.1-1.mp4'\nfile '/etc/passwd",
		"renders/j/chunks/000001.1-1.mp4 ",
		"renders/j/chunks/1.1-1.mp4",
		"renders/j/chunks/000001.1-1.avi",
	} {
		if job.IsSegmentKey("j", key) {
			t.Errorf("IsSegmentKey(%q) = true", key)
		}
	}
	if !job.IsSegmentKey("j", layout.SegmentKey("j", 12, 3, 4, "webm")) {
		t.Error("a key SegmentKey made is refused")
	}
}
