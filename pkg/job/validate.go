package job

import (
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/google/shlex"
)

// Limits that make a spec absurd rather than merely large.
const (
	MaxTotalFrames = 10_000_000
	MaxChunks      = 10_000
	MaxDimension   = 16_384
	MaxFPS         = 1_000
	MinFPS         = 0.001 // a frame every 1000 s: below, frame times overflow
	MaxArgs        = 1_000
	MaxAttempts    = 10
	MaxChunkTime   = 6 * 60 * 60 // seconds
)

// SegmentFormats are the containers the concat demuxer joins with stream copy.
var segmentFormats = []string{"mp4", "mov", "mkv", "webm", "ts", "m4v"}

var (
	idPattern      = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
	envNamePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// Problem is one thing wrong with a spec: the JSON path and what is expected.
type Problem struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

func (p Problem) String() string {
	if p.Path == "" {
		return p.Message
	}
	return p.Path + ": " + p.Message
}

// ValidationError lists every problem found in a spec.
type ValidationError struct {
	Problems []Problem `json:"problems"`
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.String()
	}
	return "invalid job spec: " + strings.Join(parts, "; ")
}

func invalid(path, msg string) *ValidationError {
	return &ValidationError{Problems: []Problem{{Path: path, Message: msg}}}
}

// Allowlist names the programs a job may run. An entry matches argv[0]
// exactly: "ffmpeg" allows "ffmpeg" (found on PATH) but not "./ffmpeg" or
// "/tmp/ffmpeg".
type Allowlist []string

// ParseAllowlist reads a comma- or space-separated list.
func ParseAllowlist(s string) Allowlist {
	return Allowlist(strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }))
}

// Allows reports whether program may run.
func (a Allowlist) Allows(program string) bool { return slices.Contains(a, program) }

// Validate checks a normalized spec against the allowlist and returns a
// *ValidationError listing every problem, or nil.
func (s *Spec) Validate(allowed Allowlist) error {
	v := &validator{allowed: allowed}
	v.spec(s)
	if len(v.problems) == 0 {
		return nil
	}
	return &ValidationError{Problems: v.problems}
}

type validator struct {
	allowed  Allowlist
	problems []Problem
}

func (v *validator) addf(path, format string, args ...any) {
	v.problems = append(v.problems, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
}

func (v *validator) spec(s *Spec) {
	if !idPattern.MatchString(s.ID) {
		v.addf("id", "must be 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit; got %q", s.ID)
	}
	v.metadata(s.Metadata)
	if !slices.Contains(segmentFormats, s.SegmentFormat) {
		v.addf("segmentFormat", "must be one of %s; got %q", strings.Join(segmentFormats, ", "), s.SegmentFormat)
	}
	switch {
	case s.IsHeliosForm() && (s.Command != "" || len(s.Args) > 0 || s.FramesPerChunk != 0 || s.ChunkCount != 0):
		v.addf("chunks", "a Helios-form spec lists its chunks; remove command, args, framesPerChunk and chunkCount")
	case s.IsHeliosForm():
		v.heliosChunks(s)
	default:
		v.native(s)
	}
	v.output(s)
	v.env(s.Env)
	if s.Assets != "" && !assetKeyPattern.MatchString(s.Assets) {
		v.addf("assets", "must be a key of the form assets/<64 hex sha256>.tar.gz; got %q", s.Assets)
	}
	v.retry(s.Retry)
	if t := s.ChunkTimeout.Seconds(); t < 1 || t > MaxChunkTime {
		v.addf("chunkTimeout", "must be between 1s and %dh; got %s", MaxChunkTime/3600, s.ChunkTimeout)
	}
}

func (v *validator) metadata(m Metadata) {
	if m.TotalFrames <= 0 || m.TotalFrames > MaxTotalFrames {
		v.addf("metadata.totalFrames", "must be between 1 and %d; got %d", MaxTotalFrames, m.TotalFrames)
	}
	if !(m.FPS >= MinFPS && m.FPS <= MaxFPS) {
		v.addf("metadata.fps", "must be from %g to %d; got %v", MinFPS, MaxFPS, m.FPS)
	}
	if m.Width <= 0 || m.Width > MaxDimension {
		v.addf("metadata.width", "must be between 1 and %d; got %d", MaxDimension, m.Width)
	}
	if m.Height <= 0 || m.Height > MaxDimension {
		v.addf("metadata.height", "must be between 1 and %d; got %d", MaxDimension, m.Height)
	}
	if m.Duration < 0 {
		v.addf("metadata.duration", "must not be negative; got %v", m.Duration)
	}
}

func (v *validator) native(s *Spec) {
	switch {
	case s.Command == "":
		v.addf("command", "must name the program that renders a chunk (for example \"ffmpeg\")")
	case strings.ContainsAny(s.Command, " \t\n"):
		v.addf("command", "must be a program name only; put its arguments in args; got %q", s.Command)
	default:
		v.program("command", s.Command)
	}
	if len(s.Args) > MaxArgs {
		v.addf("args", "must have at most %d entries; got %d", MaxArgs, len(s.Args))
	}
	v.commandSize("args", s.Args, s.Env)
	hasOutput := false
	for i, a := range s.Args {
		names := v.placeholders(fmt.Sprintf("args[%d]", i), a)
		hasOutput = hasOutput || slices.Contains(names, "output")
	}
	if !hasOutput && s.Command != "" {
		v.addf("args", "must contain {output}, the file the command writes the segment to")
	}
	total := s.Metadata.TotalFrames
	switch {
	case s.FramesPerChunk != 0 && s.ChunkCount != 0:
		v.addf("framesPerChunk", "give framesPerChunk or chunkCount, not both")
	case s.FramesPerChunk == 0 && s.ChunkCount == 0:
		v.addf("framesPerChunk", "one of framesPerChunk or chunkCount is required")
	case s.FramesPerChunk < 0 || s.FramesPerChunk > MaxTotalFrames:
		v.addf("framesPerChunk", "must be between 1 and %d; got %d", MaxTotalFrames, s.FramesPerChunk)
	case s.ChunkCount < 0:
		v.addf("chunkCount", "must be at least 1; got %d", s.ChunkCount)
	case total > 0 && s.ChunkCount > total:
		v.addf("chunkCount", "must not exceed metadata.totalFrames (%d); got %d", total, s.ChunkCount)
	case s.ChunkCount > MaxChunks:
		v.addf("chunkCount", "must be at most %d; got %d", MaxChunks, s.ChunkCount)
	case s.FramesPerChunk > 0 && total > 0 && ceilDiv(total, s.FramesPerChunk) > MaxChunks:
		v.addf("framesPerChunk", "makes %d chunks of %d frames; at most %d chunks are allowed", ceilDiv(total, s.FramesPerChunk), s.FramesPerChunk, MaxChunks)
	}
}

func (v *validator) heliosChunks(s *Spec) {
	if len(s.Chunks) > MaxChunks {
		v.addf("chunks", "must have at most %d entries; got %d", MaxChunks, len(s.Chunks))
		return
	}
	ids := map[int]int{}
	outputs := map[string]int{}
	ext, outputsOK := "", true
	for i, c := range s.Chunks {
		p := fmt.Sprintf("chunks[%d]", i)
		if j, dup := ids[c.ID]; dup {
			v.addf(p+".id", "duplicates chunks[%d].id (%d)", j, c.ID)
		}
		ids[c.ID] = i
		if c.StartFrame < 0 || c.StartFrame >= MaxTotalFrames {
			v.addf(p+".startFrame", "must be between 0 and %d; got %d", MaxTotalFrames-1, c.StartFrame)
		}
		if c.FrameCount <= 0 || c.FrameCount > MaxTotalFrames {
			v.addf(p+".frameCount", "must be between 1 and %d; got %d", MaxTotalFrames, c.FrameCount)
		}
		if !v.relativePath(p+".outputFile", c.OutputFile) {
			outputsOK = false
		} else {
			if j, dup := outputs[c.OutputFile]; dup {
				v.addf(p+".outputFile", "duplicates chunks[%d].outputFile (%q)", j, c.OutputFile)
			}
			outputs[c.OutputFile] = i
			e := strings.TrimPrefix(path.Ext(c.OutputFile), ".")
			if ext == "" {
				ext = e
			} else if e != ext {
				v.addf(p+".outputFile", "must use the same container as the other chunks (.%s) so they can be joined without re-encoding; got %q", ext, c.OutputFile)
			}
		}
		argv, err := SplitCommand(c.Command)
		switch {
		case err != nil:
			v.addf(p+".command", "%v", err)
		case len(argv) == 0:
			v.addf(p+".command", "must not be empty")
		default:
			v.program(p+".command", argv[0])
			for _, a := range argv {
				v.placeholders(p+".command", a)
			}
			v.commandSize(p+".command", argv, s.Env)
		}
	}
	if outputsOK && ext != "" && ext != s.SegmentFormat {
		v.addf("segmentFormat", "is %q but the chunks write .%s files; leave it out or make it %q", s.SegmentFormat, ext, ext)
	}
	v.coverage(s)
}

// coverage checks that the chunks, in start order (Normalize sorted them),
// cover [0, totalFrames) exactly once.
func (v *validator) coverage(s *Spec) {
	total := s.Metadata.TotalFrames
	next := 0
	for i, c := range s.Chunks {
		if c.FrameCount <= 0 || c.StartFrame < 0 || c.FrameCount > MaxTotalFrames || c.StartFrame >= MaxTotalFrames {
			return // already reported; ranges are meaningless (and could overflow)
		}
		p := fmt.Sprintf("chunks[%d]", i)
		switch {
		case c.StartFrame > next:
			v.addf(p+".startFrame", "leaves a gap: frames [%d, %d) are in no chunk", next, c.StartFrame)
		case c.StartFrame < next:
			v.addf(p+".startFrame", "overlaps the previous chunk: frames [%d, %d) are in two chunks", c.StartFrame, min(next, c.StartFrame+c.FrameCount))
		}
		end := c.StartFrame + c.FrameCount
		if total > 0 && end > total {
			v.addf(p+".frameCount", "runs past metadata.totalFrames (%d): chunk ends at frame %d", total, end)
		}
		next = max(next, end)
	}
	if total > 0 && next < total {
		v.addf("chunks", "leave frames [%d, %d) uncovered; chunks must cover [0, metadata.totalFrames)", next, total)
	}
}

func (v *validator) program(path, name string) {
	if !v.allowed.Allows(name) {
		v.addf(path, "program %q is not on the allowlist (HELIOS_ALLOWED_COMMANDS=%s)", name, strings.Join(v.allowed, ","))
	}
}

// placeholders reports unknown placeholders in one argument and returns the
// names it uses.
func (v *validator) placeholders(path, arg string) []string {
	names, unknown := scanPlaceholders(arg)
	for _, u := range unknown {
		v.addf(path, "unknown placeholder {%s}; known: %s", u, knownPlaceholderList())
	}
	return names
}

// relativePath checks a path that names a file inside the work dir.
func (v *validator) relativePath(p, file string) bool {
	switch {
	case file == "":
		v.addf(p, "must name the segment file the command writes, relative to the work dir")
	case !IsSafeRelative(file):
		v.addf(p, "must be a relative path inside the work dir, without '..'; got %q", file)
	case !slices.Contains(segmentFormats, strings.TrimPrefix(path.Ext(file), ".")):
		v.addf(p, "must end in one of .%s; got %q", strings.Join(segmentFormats, ", ."), file)
	default:
		return true
	}
	return false
}

func (v *validator) output(s *Spec) {
	switch o := s.Output; {
	case !IsSafeRelative(o):
		v.addf("output", "must be a relative storage key without '..'; got %q", o)
	case !ValidOutputKey(s.ID, o) && idPattern.MatchString(s.ID):
		v.addf("output", "must be a file directly in this job's folder %s or a key under %s%s/ (where the stitcher may write); got %q", renders(s.ID), OutputsPrefix, s.ID, o)
	case path.Ext(o) != "."+s.SegmentFormat:
		v.addf("output", "must end in .%s, the segments' container (they are joined without re-encoding); got %q", s.SegmentFormat, o)
	}
}

// ValidOutputKey reports whether a job may publish its video at key: a file
// directly in renders/<id>/, or a key under outputs/<id>/. Nothing else, so
// a job can overwrite neither inputs nor another job's files, and the
// stitcher's write permission stays two prefixes wide.
func ValidOutputKey(id, key string) bool {
	if !IsSafeRelative(key) {
		return false
	}
	if rest, ok := strings.CutPrefix(key, renders(id)); ok {
		// Not a folder, nor one of the job's own objects (keys.go).
		reserved := slices.Contains([]string{SpecKey(id), StatusKey(id), StitchLockKey(id), CancelKey(id)}, key) ||
			strings.HasPrefix(key, LeasePrefix(id))
		return rest != "" && !strings.Contains(rest, "/") && !reserved
	}
	return strings.HasPrefix(key, OutputsPrefix+id+"/")
}

// Variables a job may not set: they change which binaries, libraries,
// locales, proxies or certificates the command loads, or reach into the
// platform's credentials and our own configuration. A job's variables are
// for its own program; these are the environment's.
var (
	reservedEnv = []string{
		"PATH", "HOME", "TMPDIR", "IFS", "SHELL", "BASH_ENV", "ENV", "CDPATH", "PS4",
		"GCONV_PATH", "LOCPATH", "NLSPATH", "HOSTALIASES", "LOCALDOMAIN", "RES_OPTIONS", "RESOLV_HOST_CONF",
		"TZDIR", "GLIBC_TUNABLES", "NODE_OPTIONS", "NODE_PATH", "PYTHONPATH", "PYTHONSTARTUP", "PYTHONHOME",
		"PERL5LIB", "PERL5OPT", "RUBYOPT", "RUBYLIB", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS",
		"SSL_CERT_FILE", "SSL_CERT_DIR", "CURL_CA_BUNDLE", "FONTCONFIG_FILE", "FONTCONFIG_PATH",
		// Plugin and driver search paths: each names libraries to load.
		"LADSPA_PATH", "FREI0R_PATH", "LV2_PATH", "VDPAU_DRIVER_PATH", "DRI_DRIVER_PATH",
		"OPENSSL_CONF", "OPENSSL_MODULES", "OPENSSL_ENGINES", "GST_PLUGIN_PATH", "GST_PLUGIN_SYSTEM_PATH",
		"GIO_MODULE_DIR", "GTK_PATH", "QT_PLUGIN_PATH", "LUA_PATH", "LUA_CPATH", "PYTHONUSERBASE",
		// ffmpeg's own report file, written wherever it says.
		"FFREPORT",
	}
	reservedEnvPrefixes = []string{"LD_", "DYLD_", "MALLOC_", "AWS_", "HELIOS_", "GOOGLE_", "GCE_", "CLOUDSDK_", "K_", "LAMBDA_", "_LAMBDA",
		"VK_", "LIBVA_", "OCL_", "LIBGL_", "MESA_", "__EGL_", "__GLX_"}
)

// MaxCommandBytes bounds what one command carries (args and env together),
// well under the kernel's argument limit and Lambda's 6 MB payload.
const MaxCommandBytes = 256 << 10

func reservedEnvName(k string) bool {
	upper := strings.ToUpper(k)
	if slices.Contains(reservedEnv, upper) || strings.HasSuffix(upper, "_PROXY") {
		return true
	}
	for _, p := range reservedEnvPrefixes {
		if strings.HasPrefix(upper, p) {
			return true
		}
	}
	return false
}

func (v *validator) env(env map[string]string) {
	for _, k := range sortedKeys(env) {
		switch {
		case !envNamePattern.MatchString(k):
			v.addf("env."+k, "is not a valid environment variable name")
		case reservedEnvName(k):
			v.addf("env."+k, "is reserved and may not be set by a job")
		case strings.ContainsRune(env[k], 0):
			v.addf("env."+k, "must not contain a NUL byte")
		}
	}
}

// commandSize checks one command's arguments for NUL bytes and code
// loading (codeload.go), and the total size against MaxCommandBytes.
func (v *validator) commandSize(path string, args []string, env map[string]string) {
	n := 0
	for i, a := range args {
		n += len(a) + 1
		if strings.ContainsRune(a, 0) {
			v.addf(fmt.Sprintf("%s[%d]", path, i), "must not contain a NUL byte")
		}
		if why := codeLoading(a); why != "" {
			v.addf(fmt.Sprintf("%s[%d]", path, i), "%s", why)
		}
	}
	for k, val := range env {
		n += len(k) + len(val) + 2
	}
	if n > MaxCommandBytes {
		v.addf(path, "and env together are %d bytes; at most %d are allowed", n, MaxCommandBytes)
	}
}

// MaxBackoff bounds the retry backoffs: a job must not sleep on its lease.
const MaxBackoff = 10 * time.Minute

func (v *validator) retry(r RetryPolicy) {
	if r.MaxAttempts < 1 || r.MaxAttempts > MaxAttempts {
		v.addf("retry.maxAttempts", "must be between 1 and %d; got %d", MaxAttempts, r.MaxAttempts)
	}
	if r.InitialBackoff.Duration < 0 {
		v.addf("retry.initialBackoff", "must not be negative; got %s", r.InitialBackoff)
	}
	if r.MaxBackoff.Duration < r.InitialBackoff.Duration {
		v.addf("retry.maxBackoff", "must be at least retry.initialBackoff (%s); got %s", r.InitialBackoff, r.MaxBackoff)
	}
	if r.InitialBackoff.Duration > MaxBackoff || r.MaxBackoff.Duration > MaxBackoff {
		v.addf("retry", "backoffs must be at most %s; got initialBackoff %s, maxBackoff %s", MaxBackoff, r.InitialBackoff, r.MaxBackoff)
	}
}

// SplitCommand splits a Helios command string into argv with shell-word rules
// (quotes and backslashes honoured). Nothing is expanded and no shell runs it.
func SplitCommand(command string) ([]string, error) {
	argv, err := shlex.Split(command)
	if err != nil {
		return nil, fmt.Errorf("cannot split into words: %w", err)
	}
	return argv, nil
}

// IsSafeRelative reports whether p is a non-empty, clean, relative slash path
// that stays inside its root: no leading '/', no '.', '..' or empty segments.
// Storage keys and archive entries are checked with it.
func IsSafeRelative(p string) bool {
	if p == "" || strings.HasPrefix(p, "/") || strings.Contains(p, "\\") || strings.ContainsRune(p, 0) {
		return false
	}
	for _, part := range strings.Split(p, "/") {
		if part == "" || part == "." || part == ".." {
			return false
		}
	}
	return true
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }
