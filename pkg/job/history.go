package job

// History is renders/<id>/history.json: every worker invocation of a job
// and its stitches, across runs, which `helios job timeline` draws. It is
// written when a run ends, not while it renders.
type History struct {
	JobID    string    `json:"jobId"`
	Attempts []Attempt `json:"attempts"`
	Stitches []Span    `json:"stitches,omitempty"`
	// Runs are the job's runs (orchestrator invocations, a resume after
	// Ctrl-C), from claim to end: where one stopped and the next began.
	Runs []Span `json:"runs,omitempty"`
}

// Attempt is one invocation of the worker for a chunk. Keys are short: a
// 10,000-chunk job has at least 10,000 of them.
type Attempt struct {
	Chunk   int     `json:"c"`
	Attempt int     `json:"a"`           // the chunk's attempt number (0 for throttled calls, which spend none)
	Lane    int     `json:"l"`           // the orchestrator's dispatch slot: one invocation at a time
	Hedge   bool    `json:"h,omitempty"` // started beside a straggling attempt of the chunk
	Start   int64   `json:"s"`           // Unix ms
	End     int64   `json:"e"`           // Unix ms
	Outcome Outcome `json:"o"`
}

// Outcome is how an attempt ended.
type Outcome string

// Outcomes of an attempt.
const (
	OutcomeDone       Outcome = "done"       // the chunk's segment was made
	OutcomeRetried    Outcome = "retried"    // failed; another attempt followed
	OutcomeThrottled  Outcome = "throttled"  // the platform refused the call; retried without spending an attempt
	OutcomeFailed     Outcome = "failed"     // failed for good: the job failed
	OutcomeAbandoned  Outcome = "abandoned"  // the run stopped (cancel, interruption) before it answered
	OutcomeSuperseded Outcome = "superseded" // another attempt of the chunk completed it first; this one was cancelled
)

// Outcomes lists them in the order a legend shows them.
var Outcomes = []Outcome{OutcomeDone, OutcomeRetried, OutcomeThrottled, OutcomeFailed, OutcomeAbandoned, OutcomeSuperseded}

// Span is a stretch of time, in Unix ms.
type Span struct {
	Start int64 `json:"s"`
	End   int64 `json:"e"`
}
