package job

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/helios-project/infrastructure/pkg/joberr"
	"github.com/helios-project/infrastructure/pkg/layout"
)

// MaxSpecBytes bounds a spec document; a Helios-form spec with 10,000 chunks
// fits with room to spare.
const MaxSpecBytes = 8 << 20

// Spec is a render job. It has two forms that decode into this one type:
//
//   - the native form: Command + Args (a template with placeholders) and a
//     chunking rule (FramesPerChunk or ChunkCount);
//   - the Helios form, as written by `helios render --emit-job`: Chunks, each
//     with a ready command string and output file, and MergeCommand.
type Spec struct {
	ID       string   `json:"id,omitempty"`
	Metadata Metadata `json:"metadata"`

	// Native form.
	Command        string   `json:"command,omitempty"`
	Args           []string `json:"args,omitempty"`
	FramesPerChunk int      `json:"framesPerChunk,omitempty"`
	ChunkCount     int      `json:"chunkCount,omitempty"`
	// SegmentFormat is the container of the chunk segments (and by default of
	// the output), one of Formats: mp4, mov, mkv, webm, ts or m4v. Default mp4.
	SegmentFormat string `json:"segmentFormat,omitempty"`

	// Helios form.
	Chunks []HeliosChunk `json:"chunks,omitempty"`
	// MergeCommand is kept for the record; the stitcher always joins the
	// segments itself (concat demuxer, stream copy), which is what it does.
	MergeCommand string `json:"mergeCommand,omitempty"`

	// Both forms.
	Env          map[string]string `json:"env,omitempty"`
	Output       string            `json:"output,omitempty"` // storage key of the final video
	Assets       string            `json:"assets,omitempty"` // assets/<sha256>.tar.gz
	Retry        RetryPolicy       `json:"retry,omitzero"`
	ChunkTimeout Duration          `json:"chunkTimeout,omitzero"`
	KeepChunks   bool              `json:"keepChunks,omitempty"`
	// Hedge, on unless false, lets the orchestrator start a second attempt
	// of a chunk whose attempt straggles; the first to finish wins.
	Hedge *bool `json:"hedge,omitempty"`
	// Budget caps the job's spending (within the deployment's caps).
	Budget Budget `json:"budget,omitzero"`
	// Webhook is an https URL the orchestrator POSTs the job's summary to
	// when the job ends, signed with the deployment's key (pkg/webhook).
	Webhook string `json:"webhook,omitempty"`
	// Faststart, for the MP4 family, publishes a progressive MP4 with its
	// index in front (one remux pass, no re-encode) for players that do
	// not read fragmented MP4. Without it the output is fragmented MP4,
	// its segments joined as bytes, unless its audio is AAC: that too is
	// published progressive and faststart (see the stitcher).
	Faststart bool `json:"faststart,omitempty"`
	// Audio is the job's audio grid (MP4 family): each chunk's audio is
	// cut to exactly its share of samples at this rate and encoded once
	// for the whole job. Defaults: 48000 Hz, 2 channels.
	Audio AudioFormat `json:"audio,omitzero"`
}

// AudioFormat is the sample rate and channel count of a job's audio, and
// the codec of the output's.
type AudioFormat struct {
	SampleRate int `json:"sampleRate,omitempty"`
	Channels   int `json:"channels,omitempty"`
	// Codec is the output's audio codec: "aac", or "pcm_s16le" (mov
	// only). "" keeps lossless chunk audio lossless in a mov output and
	// encodes AAC otherwise. Chunk commands should write lossless audio
	// (PCM in mov, ALAC in mp4): a lossy encode per chunk leaves its own
	// priming and padding at every boundary, which no stitcher can take
	// back; the worker reports such chunks (LossyAudioWarning).
	Codec string `json:"codec,omitempty"`
}

// Audio codecs of an output.
const (
	AudioAAC = "aac"
	AudioPCM = "pcm_s16le"
)

// Metadata describes the video.
type Metadata struct {
	TotalFrames int     `json:"totalFrames"`
	FPS         float64 `json:"fps"`
	Width       int     `json:"width"`
	Height      int     `json:"height"`
	Duration    float64 `json:"duration,omitempty"` // seconds; informational (Helios form)
}

// HeliosChunk is one entry of a Helios-form spec.
type HeliosChunk struct {
	ID         int    `json:"id"`
	StartFrame int    `json:"startFrame"`
	FrameCount int    `json:"frameCount"`
	OutputFile string `json:"outputFile"`
	Command    string `json:"command"`
}

// RetryPolicy governs retries of a chunk after a retryable error.
type RetryPolicy struct {
	MaxAttempts    int      `json:"maxAttempts,omitempty"`
	InitialBackoff Duration `json:"initialBackoff,omitzero"`
	MaxBackoff     Duration `json:"maxBackoff,omitzero"`
}

// Defaults applied by Normalize.
const (
	DefaultSegmentFormat  = "mp4"
	DefaultMaxAttempts    = 3
	DefaultInitialBackoff = 500 * time.Millisecond
	DefaultMaxBackoff     = 30 * time.Second
	DefaultChunkTimeout   = 15 * time.Minute
	DefaultSampleRate     = 48000
	DefaultChannels       = 2
)

// Duration is a time.Duration written in JSON as a Go duration string ("90s").
type Duration struct{ time.Duration }

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("expected a duration string such as \"90s\", got %s", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("expected a duration string such as \"90s\", got %q", s)
	}
	d.Duration = v
	return nil
}

// Hedged reports whether the job's straggling chunks may be hedged.
func (s *Spec) Hedged() bool { return s.Hedge == nil || *s.Hedge }

// IsHeliosForm reports whether the spec lists its chunks itself.
func (s *Spec) IsHeliosForm() bool { return len(s.Chunks) > 0 }

// Decode reads a spec strictly: unknown fields, wrong types, trailing data and
// documents over MaxSpecBytes are refused with a *ValidationError naming the
// JSON path. It does not validate the content; call Normalize then Validate.
func Decode(r io.Reader) (*Spec, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxSpecBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read spec: %w", err)
	}
	if len(data) > MaxSpecBytes {
		return nil, invalid("", fmt.Sprintf("spec is larger than %d bytes", MaxSpecBytes))
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if bytes.Equal(bytes.TrimSpace(data), []byte("null")) {
		return nil, invalid("", "expected a JSON object, got null")
	}
	var s Spec
	if err := dec.Decode(&s); err != nil {
		return nil, decodeProblem(err, data)
	}
	if dec.More() {
		return nil, invalid("", "unexpected data after the JSON object")
	}
	return &s, nil
}

// DecodeProblems is Decode, then Normalize and ValidateRules, listing every
// problem in one round: a spec that does not decode (unknown names, wrong
// types) is also decoded as far as it goes, and validated, so the user
// learns of a bad fps or an unknown placeholder with the misspelt field,
// not one fix later. Problems that only restate a decode problem (a field
// left zero because its value had the wrong type) are left out. id, if not
// "", replaces the spec's id.
func DecodeProblems(data []byte, id string, rules Rules) (*Spec, error) {
	spec, err := Decode(bytes.NewReader(data))
	var decoded *joberr.ValidationError
	if err != nil && (!errors.As(err, &decoded) || !json.Valid(data) || len(decoded.Problems) == 0 || decoded.Problems[0].Path == "") {
		return nil, err // not JSON, or not an object: nothing more to say
	}
	if err != nil {
		// As far as it goes: json.Unmarshal skips unknown names and leaves
		// a value of the wrong type zero.
		spec = new(Spec)
		_ = json.Unmarshal(data, spec)
	}
	if id != "" {
		spec.ID = id
	}
	spec.Normalize()
	verr := spec.ValidateRules(rules)
	if decoded == nil {
		if verr != nil {
			return nil, verr
		}
		return spec, nil
	}
	var more *joberr.ValidationError
	if errors.As(verr, &more) {
		for _, p := range more.Problems {
			if !restates(p, decoded.Problems) {
				decoded.Problems = append(decoded.Problems, p)
			}
		}
	}
	return nil, decoded
}

// restates reports whether p is about a field a decode problem already
// names: the same path, a path under it, or the field an unknown name was
// a misspelling of.
func restates(p joberr.Problem, decoded []joberr.Problem) bool {
	for _, d := range decoded {
		if p.Path == d.Path || strings.HasPrefix(p.Path, d.Path+".") || strings.HasPrefix(p.Path, d.Path+"[") ||
			strings.Contains(d.Message, "did you mean "+p.Path+"?") {
			return true
		}
	}
	return false
}

func decodeProblem(err error, data []byte) error {
	var syn *json.SyntaxError
	switch {
	case errors.As(err, &syn):
		line, col := lineColumn(data, syn.Offset-1)
		return invalid("", fmt.Sprintf("invalid JSON at line %d, column %d: %v", line, col, syn))
	case errors.Is(err, io.EOF):
		return invalid("", "empty document: expected a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return invalid("", "invalid JSON: the document ends before the object is complete")
	}
	// Wrong types, unknown fields and bad durations: say where, in the
	// spec's words, and list them all.
	if problems := locate(data, reflect.TypeFor[Spec]()); len(problems) > 0 {
		return &joberr.ValidationError{Problems: problems}
	}
	return invalid("", strings.TrimPrefix(err.Error(), "json: "))
}

// Normalize fills defaults so that the stored spec says exactly what runs. It
// sorts Helios-form chunks by start frame, which makes chunk index i the i-th
// range of the video.
func (s *Spec) Normalize() {
	if s.IsHeliosForm() {
		sort.SliceStable(s.Chunks, func(i, j int) bool { return s.Chunks[i].StartFrame < s.Chunks[j].StartFrame })
		if s.SegmentFormat == "" {
			s.SegmentFormat = strings.TrimPrefix(path.Ext(s.Chunks[0].OutputFile), ".")
		}
	}
	if s.SegmentFormat == "" {
		s.SegmentFormat = DefaultSegmentFormat
	}
	if s.Output == "" && s.ID != "" {
		s.Output = layout.DefaultOutputKey(s.ID, s.SegmentFormat)
	}
	if s.Retry.MaxAttempts == 0 {
		s.Retry.MaxAttempts = DefaultMaxAttempts
	}
	if s.Retry.InitialBackoff.Duration == 0 {
		s.Retry.InitialBackoff.Duration = DefaultInitialBackoff
	}
	if s.Retry.MaxBackoff.Duration == 0 {
		s.Retry.MaxBackoff.Duration = max(DefaultMaxBackoff, s.Retry.InitialBackoff.Duration)
	}
	if s.ChunkTimeout.Duration == 0 {
		s.ChunkTimeout.Duration = DefaultChunkTimeout
	}
	if f, _ := FormatOf("." + s.SegmentFormat); f.MP4 {
		s.Audio.SampleRate = cmp.Or(s.Audio.SampleRate, DefaultSampleRate)
		s.Audio.Channels = cmp.Or(s.Audio.Channels, DefaultChannels)
	}
}

// Canonical is the byte form stored as renders/<id>/spec.json; two specs are
// the same job exactly when their canonical forms are equal.
func (s *Spec) Canonical() ([]byte, error) {
	return json.MarshalIndent(s, "", "  ")
}

// PeekID returns the "id" of a spec document without validating anything
// else ("" if it has none or does not decode).
func PeekID(data []byte) string {
	var probe struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(data, &probe) != nil {
		return ""
	}
	return probe.ID
}

// invalid is a spec problem of its own.
func invalid(path, msg string) *joberr.ValidationError {
	return &joberr.ValidationError{Problems: []joberr.Problem{{Path: path, Message: msg}}}
}
