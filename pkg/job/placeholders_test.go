package job_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/helios-project/infrastructure/pkg/job"
)

func testVars() job.Vars {
	return job.Vars{
		JobID:  "job-42",
		Chunk:  job.Chunk{Index: 3, Start: 90, Count: 30},
		Output: "chunk-000003.mp4",
		FPS:    29.97,
		Width:  1920,
		Height: 1080,
	}
}

func TestVarsExpand(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		// each placeholder
		{"{start}", "90"},
		{"{end}", "120"},
		{"{count}", "30"},
		{"{last}", "119"},
		{"{chunk}", "3"},
		{"{output}", "chunk-000003.mp4"},
		{"{fps}", "30000/1001"}, // an NTSC rate, exactly
		{"{width}", "1920"},
		{"{height}", "1080"},
		{"{jobId}", "job-42"},
		// several in one argument, with text around
		{"{width}x{height}", "1920x1080"},
		{"trim=start_frame={start}:end_frame={end}", "trim=start_frame=90:end_frame=120"},
		{"{start}{start}", "9090"},
		{"frames {start}-{last} of {jobId}.", "frames 90-119 of job-42."},
		// escapes
		{"{{", "{"},
		{"}}", "}"},
		{"{{start}}", "{start}"},
		{"{{{start}}}", "{90}"},
		{"{{{{", "{{"},
		{"a{{b}}c", "a{b}c"},
		{"drawtext=text='{{x}}'", "drawtext=text='{x}'"},
		// lone braces and non-placeholders are left as they are
		{"{", "{"},
		{"}", "}"},
		{"a{b", "a{b"},
		{"a}b", "a}b"},
		{"{start", "{start"},
		{"start}", "start}"},
		{"{}", "{}"},
		{"{ start }", "{ start }"},
		{"{1}", "{1}"},
		{"{start1}", "{start1}"},
		{"{start_x}", "{start_x}"},
		{"{foo}", "{foo}"},
		{"{Start}", "{Start}"},
		{"{JOBID}", "{JOBID}"},
		{"{{}", "{}"},
		{"{}}", "{}"},
		{"{start}}", "90}"},
		{"{{start}", "{start}"},
		// no braces at all
		{"", ""},
		{"-y", "-y"},
		{"ünïcödé {start} ✓", "ünïcödé 90 ✓"},
	}
	v := testVars()
	for _, tt := range tests {
		got := v.Expand([]string{tt.in})
		if len(got) != 1 || got[0] != tt.want {
			t.Errorf("Expand(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestVarsExpandSlice(t *testing.T) {
	v := testVars()
	in := []string{"-i", "{output}", "{chunk}"}
	orig := slices.Clone(in)
	got := v.Expand(in)
	if !slices.Equal(got, []string{"-i", "chunk-000003.mp4", "3"}) {
		t.Errorf("Expand = %q", got)
	}
	if !slices.Equal(in, orig) {
		t.Errorf("Expand modified its input: %q", in)
	}
	if got := v.Expand(nil); got == nil || len(got) != 0 {
		t.Errorf("Expand(nil) = %#v, want an empty non-nil slice", got)
	}
}

func TestVarsExpandFirstChunk(t *testing.T) {
	v := job.Vars{JobID: "j", Chunk: job.Chunk{Index: 0, Start: 0, Count: 1}, Output: "o.mp4", FPS: 30, Width: 1, Height: 1}
	got := v.Expand([]string{"{start}", "{end}", "{count}", "{last}", "{chunk}", "{fps}"})
	if want := []string{"0", "1", "1", "0", "0", "30"}; !slices.Equal(got, want) {
		t.Errorf("Expand = %q, want %q", got, want)
	}
}

// The validator and the expander must agree on what a placeholder is: every
// name the validator accepts is filled, and anything the validator does not
// see as a placeholder survives expansion unchanged.
func TestPlaceholdersValidatorAgreesWithExpand(t *testing.T) {
	v := testVars()
	known := []string{"start", "end", "count", "last", "chunk", "output", "fps", "width", "height", "jobId"}
	for _, name := range known {
		s := nativeSpec()
		s.Args = []string{"{" + name + "}", "{output}"}
		s.Normalize()
		if err := s.Validate(testAllow); err != nil {
			t.Errorf("{%s} rejected: %v", name, err)
		}
		if got := v.Expand([]string{"{" + name + "}"})[0]; strings.ContainsAny(got, "{}") {
			t.Errorf("{%s} not expanded: %q", name, got)
		}
	}
	for _, arg := range []string{"{foo}", "{Output}", "{startFrame}", "x{bar}y", "{start_seconds}", "{frame2}"} {
		s := nativeSpec()
		s.Args = []string{arg, "{output}"}
		s.Normalize()
		probs := problemsOf(t, s.Validate(testAllow))
		if len(probs) != 1 || probs[0].Path != "args[0]" || !strings.Contains(probs[0].Message, "unknown placeholder") {
			t.Errorf("arg %q: problems = %+v, want one unknown placeholder at args[0]", arg, probs)
		}
		if got := v.Expand([]string{arg})[0]; got != arg {
			t.Errorf("Expand(%q) = %q; unknown placeholders must be left as they are", arg, got)
		}
	}
	for _, arg := range []string{"{{foo}}", "{", "}", "{1}", "{ foo }", "{}", "{_x}", "{a-b}"} {
		s := nativeSpec()
		s.Args = []string{arg, "{output}"}
		s.Normalize()
		if err := s.Validate(testAllow); err != nil {
			t.Errorf("arg %q rejected: %v", arg, err)
		}
	}
	// Several unknown placeholders in one argument are each reported.
	s := nativeSpec()
	s.Args = []string{"{a}{b}", "{output}"}
	s.Normalize()
	if probs := problemsOf(t, s.Validate(testAllow)); len(probs) != 2 {
		t.Errorf("problems = %+v, want two (one per unknown placeholder)", probs)
	}
}
