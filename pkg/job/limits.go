package job

import "time"

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

// MaxCommandBytes bounds what one command carries (args and env together),
// well under the kernel's argument limit and Lambda's 6 MB payload.
const MaxCommandBytes = 256 << 10

// MaxBackoff bounds the retry backoffs: a job must not sleep on its lease.
const MaxBackoff = 10 * time.Minute
