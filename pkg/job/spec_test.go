package job_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/joberr"
)

// decodeProblem decodes doc and returns the single problem of the
// *ValidationError it must fail with.
func decodeProblem(t *testing.T, doc string) joberr.Problem {
	t.Helper()
	s, err := job.Decode(strings.NewReader(doc))
	if err == nil {
		t.Fatalf("Decode(%.80q) = %+v, want an error", doc, s)
	}
	if s != nil {
		t.Errorf("Decode(%.80q) returned a spec along with error %v", doc, err)
	}
	var ve *joberr.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("Decode(%.80q) error is %T (%v), want *joberr.ValidationError", doc, err, err)
	}
	if len(ve.Problems) != 1 {
		t.Fatalf("Decode(%.80q) problems = %+v, want exactly one", doc, ve.Problems)
	}
	return ve.Problems[0]
}

func TestDecodeRejects(t *testing.T) {
	tests := []struct {
		name     string
		doc      string
		wantPath string
		wantMsg  string
	}{
		{"unknown top-level field", `{"id":"a","bogus":1}`, "bogus", "unknown field"},
		{"unknown field with a near-miss name", `{"id":"a","framesPerChnk":10}`, "framesPerChnk", "unknown field"},
		{"unknown field in metadata", `{"metadata":{"totalFrame":10}}`, "metadata.totalFrame", "unknown field; did you mean metadata.totalFrames?"},
		{"a part of a known name", `{"metadata":{"frames":10}}`, "metadata.frames", "unknown field; did you mean metadata.totalFrames?"},
		{"unknown field in a Helios chunk", `{"chunks":[{"id":0,"outfile":"x.mp4"}]}`, "chunks[0].outfile", "unknown field; did you mean chunks[0].outputFile?"},
		{"unknown field in retry", `{"retry":{"attempts":2}}`, "retry.attempts", "unknown field; did you mean retry.maxAttempts?"},
		{"string for int", `{"metadata":{"totalFrames":"100"}}`, "metadata.totalFrames", `expected a whole number, got the string "100"`},
		{"float for int", `{"metadata":{"totalFrames":1.5}}`, "metadata.totalFrames", "expected a whole number, got the number 1.5"},
		{"string for float", `{"metadata":{"fps":"30"}}`, "metadata.fps", `expected a number, got the string "30"`},
		{"number for string", `{"command":5}`, "command", "expected a string, got the number 5"},
		{"object for array", `{"args":{"a":1}}`, "args", "expected a list of strings, got an object"},
		{"string for bool", `{"keepChunks":"yes"}`, "keepChunks", `expected true or false, got the string "yes"`},
		{"nested retry type", `{"retry":{"maxAttempts":"3"}}`, "retry.maxAttempts", "expected a whole number"},
		{"number for env value", `{"env":{"A":1}}`, "env.A", "expected a string, got the number 1"},
		{"array for the document", `[]`, "", "expected an object, got a list"},
		{"trailing object", `{"id":"a"} {"id":"b"}`, "", "unexpected data after the JSON object"},
		{"trailing garbage", `{"id":"a"}x`, "", "unexpected data after the JSON object"},
		{"trailing comma", `{"id":"a"},`, "", "unexpected data after the JSON object"},
		{"invalid duration string", `{"chunkTimeout":"ten minutes"}`, "chunkTimeout", `expected a duration such as "90s" or "15m", got the string "ten minutes"`},
		{"duration as a number", `{"chunkTimeout":600}`, "chunkTimeout", "expected a duration such as \"90s\" or \"15m\", got the number 600"},
		{"invalid backoff", `{"retry":{"initialBackoff":"1x"}}`, "retry.initialBackoff", "expected a duration"},
		{"empty document", ``, "", "empty document"},
		{"whitespace-only document", " \n\t ", "", "empty document"},
		{"syntax error", `{"id":}`, "", "invalid JSON at line 1, column 7"},
		{"syntax error on a later line", "{\n  \"id\": \"a\",\n  \"metadata\": {,}\n}", "", "invalid JSON at line 3, column 16"},
		{"truncated document", `{"id":"a"`, "", "the document ends before the object is complete"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := decodeProblem(t, tt.doc)
			if p.Path != tt.wantPath {
				t.Errorf("path = %q, want %q (problem %q)", p.Path, tt.wantPath, p.Message)
			}
			if !strings.Contains(p.Message, tt.wantMsg) {
				t.Errorf("message = %q, want it to contain %q", p.Message, tt.wantMsg)
			}
		})
	}
}

func TestDecodeOverMaxSpecBytes(t *testing.T) {
	// A syntactically valid document, padded with whitespace past the limit:
	// the size check must come before parsing.
	doc := `{"id":"a"}` + strings.Repeat(" ", job.MaxSpecBytes)
	p := decodeProblem(t, doc)
	if p.Path != "" || !strings.Contains(p.Message, fmt.Sprint(job.MaxSpecBytes)) {
		t.Errorf("problem = %+v, want an empty path and a message naming %d", p, job.MaxSpecBytes)
	}

	// Exactly MaxSpecBytes is accepted.
	exact := `{"id":"a"}` + strings.Repeat(" ", job.MaxSpecBytes-len(`{"id":"a"}`))
	s, err := job.Decode(strings.NewReader(exact))
	if err != nil {
		t.Fatalf("Decode of exactly MaxSpecBytes: %v", err)
	}
	if s.ID != "a" {
		t.Errorf("ID = %q, want a", s.ID)
	}
}

func TestDecodeOverMaxSpecBytesDoesNotReadEverything(t *testing.T) {
	// An endless reader must not be read to its end.
	r := &countingReader{}
	_, err := job.Decode(io.MultiReader(strings.NewReader(`{"id":"a"}`), r))
	var ve *joberr.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("Decode(endless) error = %v, want *joberr.ValidationError", err)
	}
	if r.n > 2*job.MaxSpecBytes {
		t.Errorf("read %d bytes from an endless reader; want at most about MaxSpecBytes", r.n)
	}
}

type countingReader struct{ n int }

func (c *countingReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	c.n += len(p)
	return len(p), nil
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

func TestDecodeReadError(t *testing.T) {
	_, err := job.Decode(failingReader{})
	if err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("Decode(failing reader) = %v, want the read error", err)
	}
}

func TestDecodeBothForms(t *testing.T) {
	native := `{
		"id": "job-1",
		"metadata": {"totalFrames": 300, "fps": 29.97, "width": 1920, "height": 1080},
		"command": "ffmpeg",
		"args": ["-y", "{output}"],
		"framesPerChunk": 30,
		"env": {"TZ": "UTC"},
		"retry": {"maxAttempts": 5, "initialBackoff": "1s", "maxBackoff": "1m"},
		"chunkTimeout": "90s",
		"keepChunks": true
	}`
	s, err := job.Decode(strings.NewReader(native))
	if err != nil {
		t.Fatalf("Decode(native): %v", err)
	}
	if s.IsHeliosForm() {
		t.Error("native spec reports IsHeliosForm")
	}
	if s.ID != "job-1" || s.Metadata.TotalFrames != 300 || s.Metadata.FPS != 29.97 || s.Command != "ffmpeg" ||
		len(s.Args) != 2 || s.FramesPerChunk != 30 || s.Env["TZ"] != "UTC" || !s.KeepChunks {
		t.Errorf("decoded native spec = %+v", s)
	}
	if s.Retry.MaxAttempts != 5 || s.Retry.InitialBackoff.Duration != time.Second || s.Retry.MaxBackoff.Duration != time.Minute {
		t.Errorf("retry = %+v", s.Retry)
	}
	if s.ChunkTimeout.Duration != 90*time.Second {
		t.Errorf("chunkTimeout = %v, want 90s", s.ChunkTimeout)
	}

	helios := `{
		"id": "h",
		"metadata": {"totalFrames": 60, "fps": 30, "width": 640, "height": 360, "duration": 2},
		"chunks": [
			{"id": 1, "startFrame": 30, "frameCount": 30, "outputFile": "b.mov", "command": "ffmpeg -y b.mov"},
			{"id": 0, "startFrame": 0, "frameCount": 30, "outputFile": "a.mov", "command": "ffmpeg -y a.mov"}
		],
		"mergeCommand": "ffmpeg -f concat -i list.txt -c copy out.mov"
	}`
	s, err = job.Decode(strings.NewReader(helios))
	if err != nil {
		t.Fatalf("Decode(helios): %v", err)
	}
	if !s.IsHeliosForm() || len(s.Chunks) != 2 || s.Chunks[0].ID != 1 || s.MergeCommand == "" || s.Metadata.Duration != 2 {
		t.Errorf("decoded helios spec = %+v", s)
	}
}

func TestNormalizeDefaults(t *testing.T) {
	s := &job.Spec{ID: "j", Metadata: job.Metadata{TotalFrames: 10, FPS: 30, Width: 2, Height: 2}, Command: "ffmpeg", Args: []string{"{output}"}, FramesPerChunk: 5}
	s.Normalize()
	if s.SegmentFormat != job.DefaultSegmentFormat {
		t.Errorf("SegmentFormat = %q, want %q", s.SegmentFormat, job.DefaultSegmentFormat)
	}
	if s.Output != "renders/j/output.mp4" {
		t.Errorf("Output = %q, want renders/j/output.mp4", s.Output)
	}
	if s.Retry.MaxAttempts != job.DefaultMaxAttempts || s.Retry.InitialBackoff.Duration != job.DefaultInitialBackoff || s.Retry.MaxBackoff.Duration != job.DefaultMaxBackoff {
		t.Errorf("Retry = %+v, want defaults", s.Retry)
	}
	if s.ChunkTimeout.Duration != job.DefaultChunkTimeout {
		t.Errorf("ChunkTimeout = %v, want %v", s.ChunkTimeout, job.DefaultChunkTimeout)
	}

	// Explicit values are kept; a large initial backoff raises the default max.
	s = &job.Spec{ID: "j", SegmentFormat: "mkv", Output: "out/x.mkv",
		Retry:        job.RetryPolicy{MaxAttempts: 7, InitialBackoff: job.Duration{Duration: time.Minute}},
		ChunkTimeout: job.Duration{Duration: time.Hour}}
	s.Normalize()
	if s.SegmentFormat != "mkv" || s.Output != "out/x.mkv" || s.Retry.MaxAttempts != 7 || s.ChunkTimeout.Duration != time.Hour {
		t.Errorf("explicit values changed: %+v", s)
	}
	if s.Retry.MaxBackoff.Duration != time.Minute {
		t.Errorf("MaxBackoff = %v, want the initial backoff (1m) when it exceeds the default", s.Retry.MaxBackoff)
	}

	// No ID: no default output key is invented.
	s = &job.Spec{}
	s.Normalize()
	if s.Output != "" {
		t.Errorf("Output = %q for a spec without id, want empty", s.Output)
	}

	// Normalize is idempotent.
	a := heliosSpec()
	a.Normalize()
	b1, _ := a.Canonical()
	a.Normalize()
	b2, _ := a.Canonical()
	if !bytes.Equal(b1, b2) {
		t.Errorf("Normalize is not idempotent:\n%s\n%s", b1, b2)
	}
}

func TestNormalizeHeliosForm(t *testing.T) {
	s := heliosSpec()
	s.Normalize()
	for i, want := range []int{0, 30, 60} {
		if s.Chunks[i].StartFrame != want {
			t.Errorf("Chunks[%d].StartFrame = %d, want %d (sorted by start frame)", i, s.Chunks[i].StartFrame, want)
		}
	}
	if s.SegmentFormat != "mov" {
		t.Errorf("SegmentFormat = %q, want mov (from the chunks' output files)", s.SegmentFormat)
	}
	if s.Output != "renders/helios-job/output.mov" {
		t.Errorf("Output = %q, want renders/helios-job/output.mov", s.Output)
	}
}

func TestCanonicalRoundTrip(t *testing.T) {
	for name, s := range map[string]*job.Spec{"native": nativeSpec(), "helios": heliosSpec()} {
		t.Run(name, func(t *testing.T) {
			s.Normalize()
			b, err := s.Canonical()
			if err != nil {
				t.Fatal(err)
			}
			back, err := job.Decode(bytes.NewReader(b))
			if err != nil {
				t.Fatalf("Decode(Canonical()) = %v\n%s", err, b)
			}
			b2, err := back.Canonical()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b, b2) {
				t.Errorf("canonical form changed on round trip:\n%s\n---\n%s", b, b2)
			}
			if err := back.Validate(testAllow); err != nil {
				t.Errorf("round-tripped spec does not validate: %v", err)
			}
		})
	}
}

func TestDurationJSON(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
	}{
		{`"90s"`, 90 * time.Second},
		{`"1h2m3s"`, time.Hour + 2*time.Minute + 3*time.Second},
		{`"500ms"`, 500 * time.Millisecond},
		{`"-1s"`, -time.Second},
		{`"0s"`, 0},
	}
	for _, tt := range tests {
		var d job.Duration
		if err := json.Unmarshal([]byte(tt.in), &d); err != nil {
			t.Errorf("Unmarshal(%s): %v", tt.in, err)
			continue
		}
		if d.Duration != tt.want {
			t.Errorf("Unmarshal(%s) = %v, want %v", tt.in, d.Duration, tt.want)
		}
		b, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		var back job.Duration
		if err := json.Unmarshal(b, &back); err != nil || back != d {
			t.Errorf("round trip of %v via %s = %v, %v", d, b, back, err)
		}
	}
	for _, bad := range []string{`90`, `"90"`, `"abc"`, `""`, `true`, `{}`} {
		var d job.Duration
		if err := json.Unmarshal([]byte(bad), &d); err == nil {
			t.Errorf("Unmarshal(%s) = %v, want an error", bad, d)
		}
	}
}

// ---- errors.go ----

func TestAsError(t *testing.T) {
	typed := joberr.Errorf(joberr.Permanent, joberr.CodeNotAllowed, "nope")
	tests := []struct {
		name     string
		err      error
		wantKind joberr.Kind
		wantCode string
		wantMsg  string
	}{
		{"validation error", &joberr.ValidationError{Problems: []joberr.Problem{{Path: "id", Message: "bad"}}}, joberr.Permanent, joberr.CodeInvalid, "id: bad"},
		{"wrapped validation error", fmt.Errorf("submit: %w", &joberr.ValidationError{Problems: []joberr.Problem{{Message: "x"}}}), joberr.Permanent, joberr.CodeInvalid, "invalid job spec"},
		{"context canceled", context.Canceled, joberr.Retryable, joberr.CodeCancelled, "canceled"},
		{"wrapped context canceled", fmt.Errorf("ffmpeg: %w", context.Canceled), joberr.Retryable, joberr.CodeCancelled, "ffmpeg"},
		{"deadline exceeded", fmt.Errorf("x: %w", context.DeadlineExceeded), joberr.Retryable, joberr.CodeTimeout, "deadline"},
		{"plain error", errors.New("boom"), joberr.Retryable, joberr.CodeInternal, "boom"},
		{"typed error", typed, joberr.Permanent, joberr.CodeNotAllowed, "nope"},
		{"wrapped typed error", fmt.Errorf("outer: %w", typed), joberr.Permanent, joberr.CodeNotAllowed, "nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := joberr.AsError(tt.err)
			if e == nil {
				t.Fatal("AsError returned nil")
			}
			if e.Kind != tt.wantKind || e.Code != tt.wantCode {
				t.Errorf("AsError = {%s %s}, want {%s %s}", e.Kind, e.Code, tt.wantKind, tt.wantCode)
			}
			if !strings.Contains(e.Message, tt.wantMsg) {
				t.Errorf("Message = %q, want it to contain %q", e.Message, tt.wantMsg)
			}
			if got := joberr.IsRetryable(tt.err); got != (tt.wantKind == joberr.Retryable) {
				t.Errorf("IsRetryable = %v, want %v", got, tt.wantKind == joberr.Retryable)
			}
		})
	}
	if joberr.AsError(nil) != nil {
		t.Error("AsError(nil) != nil")
	}
	if joberr.AsError(typed) != typed {
		t.Error("AsError(*Error) did not return the same error")
	}
}

func TestErrorString(t *testing.T) {
	e := joberr.Errorf(joberr.Retryable, joberr.CodeCommandFailed, "ffmpeg exited with status %d", 1)
	if e.Error() != "ffmpeg exited with status 1" {
		t.Errorf("Error() = %q", e.Error())
	}
	c := e.WithChunk(4)
	if e.Chunk != nil {
		t.Error("WithChunk modified the receiver")
	}
	c.StderrTail = "last line"
	if got, want := c.Error(), "chunk 4: ffmpeg exited with status 1\nlast line"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !c.Retryable() || joberr.Errorf(joberr.Permanent, joberr.CodeInvalid, "x").Retryable() {
		t.Error("Retryable() does not follow Kind")
	}
}

func TestWireRoundTrip(t *testing.T) {
	chunk := 3
	errs := []error{
		&joberr.Error{Kind: joberr.Retryable, Code: joberr.CodeCommandFailed, Message: "ffmpeg exited with status 1", Chunk: &chunk, ExitCode: 1, StderrTail: "Invalid data\nfound \"here\""},
		joberr.Errorf(joberr.Permanent, joberr.CodeNotAllowed, "program %q is not allowed", "rm"),
		&joberr.ValidationError{Problems: []joberr.Problem{{Path: "metadata.fps", Message: "must be > 0"}}},
		errors.New("unicode ✓ and <html> & \"quotes\""),
		context.Canceled,
	}
	for _, err := range errs {
		msg := joberr.MarshalWire(err)
		got, ok := joberr.UnmarshalWire(msg)
		if !ok {
			t.Errorf("UnmarshalWire(MarshalWire(%v)) not ok; wire = %s", err, msg)
			continue
		}
		want := joberr.AsError(err)
		if got.Kind != want.Kind || got.Code != want.Code || got.Message != want.Message ||
			got.ExitCode != want.ExitCode || got.StderrTail != want.StderrTail ||
			(got.Chunk == nil) != (want.Chunk == nil) || (got.Chunk != nil && *got.Chunk != *want.Chunk) {
			t.Errorf("round trip of %v = %+v, want %+v", err, got, want)
		}
	}
}

func TestUnmarshalWireRejects(t *testing.T) {
	for _, msg := range []string{
		"",
		"boom",
		"null",
		`"a string"`,
		`[]`,
		`{}`,
		`{"errorMessage":"Task timed out after 3.00 seconds","errorType":"Runtime.ExitError"}`,
		`{"kind":"fatal","code":"x","message":"y"}`,
		`{"kind":"","code":"internal"}`,
		`{"kind":1}`,
		`{"kind":"retryable"`,
	} {
		if e, ok := joberr.UnmarshalWire(msg); ok || e != nil {
			t.Errorf("UnmarshalWire(%q) = %+v, %v; want nil, false", msg, e, ok)
		}
	}
}

// Every problem of a document that does not decode is listed, each with
// its full path.
func TestDecodeListsEveryProblem(t *testing.T) {
	_, err := job.Decode(strings.NewReader(`{"metadata":{"frames":1,"fps":"x"},"bogus":1,"chunkTimeout":300}`))
	var ve *joberr.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("%v, want a ValidationError", err)
	}
	var got []string
	for _, p := range ve.Problems {
		got = append(got, p.Path)
	}
	if want := []string{"bogus", "chunkTimeout", "metadata.fps", "metadata.frames"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("problems at %v, want %v: %v", got, want, ve.Problems)
	}
}

// Every problem of a spec in one round: the names and types a decode finds,
// and what validation finds in the rest (a bad fps, an unknown
// placeholder), without restating a field the decode already named.
func TestDecodeProblemsListsEverything(t *testing.T) {
	doc := `{"id":"j","metadata":{"totalFrames":"100","fps":0,"width":64,"height":48},"command":"ffmpeg",
		"args":["-i","x{foo}","{output}"],"framesPerChunck":10,"retry":{"maxAttempts":"3"}}`
	_, err := job.DecodeProblems([]byte(doc), "", job.Rules{Programs: job.Allowlist{"ffmpeg"}})
	var ve *joberr.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("err = %v, want a *ValidationError", err)
	}
	var paths []string
	for _, p := range ve.Problems {
		paths = append(paths, p.Path)
	}
	want := []string{"framesPerChunck", "metadata.totalFrames", "retry.maxAttempts", "metadata.fps", "args[1]"}
	if !slices.Equal(paths, want) {
		t.Errorf("problems at %q, want %q:\n%v", paths, want, ve)
	}
	// Not JSON: one problem, as Decode says it.
	if _, err := job.DecodeProblems([]byte(`{"id":`), "", job.Rules{}); !errors.As(err, &ve) || len(ve.Problems) != 1 {
		t.Errorf("truncated JSON: %v", err)
	}
}
