package job_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/helios-project/infrastructure/pkg/job"
)

func TestDecodeNull(t *testing.T) {
	_, err := job.Decode(strings.NewReader(" null "))
	var ve *job.ValidationError
	if !errors.As(err, &ve) || !strings.Contains(ve.Error(), "expected a JSON object") {
		t.Errorf("Decode(null) = %v, want a validation error", err)
	}
}

func TestIsRetryableNil(t *testing.T) {
	if job.IsRetryable(nil) {
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
