// Package orchestrator runs a job's life: claim the spec, plan the chunks,
// render them on workers with bounded concurrency, retries and a per-chunk
// timeout, watch for cancellation, keep status.json current, stitch exactly
// once, and record the final status. The job's stored state is a
// jobstore.Store; the workers and the stitcher are reached through the
// interfaces below (adapter.Adapter implements both).
//
// Every step is safe to repeat. The accepted spec, leases, completion
// markers and the stitch lock are created if not exists, so a duplicate
// trigger, a retry or a second orchestrator finds the work done and does not
// redo it; a crashed run resumes by re-rendering only the chunks without a
// marker.
package orchestrator

import (
	"context"
	"log/slog"
	"runtime"
	"time"

	"github.com/helios-project/infrastructure/pkg/cost"
	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/jobstore"
)

// WorkerAdapter renders one chunk wherever workers run (the design card's
// name).
type WorkerAdapter interface {
	Execute(ctx context.Context, w job.WorkerJob) (job.WorkerResult, error)
}

// functionRouter is a WorkerAdapter that says which function runs a chunk
// (pkg/adapter: the browser worker for a Helios chunk, where there is one),
// so the chunk is priced at that function's size. Without it: the worker.
type functionRouter interface {
	FunctionFor(w job.WorkerJob) string
}

// Stitcher joins a job's segments into its video: the stitcher function,
// wherever it runs (pkg/stitch's VideoStitcher is what it uses inside).
type Stitcher interface {
	Stitch(ctx context.Context, r job.StitchRequest) (job.StitchResult, error)
}

// Config tunes an Orchestrator. Zero values take the defaults.
type Config struct {
	// Concurrency is how many chunks are in flight at once (default: CPUs).
	Concurrency int
	// StatusInterval is the least time between two status.json writes while
	// chunks complete (default 1s); state changes are written at once.
	StatusInterval time.Duration
	// CancelPollInterval is how often the cancel object is looked for
	// (default 2s).
	CancelPollInterval time.Duration
	// ChunkGrace is added to a spec's chunkTimeout for the whole invocation
	// (fetching assets, uploading) before the orchestrator gives up on it
	// (default 2m).
	ChunkGrace time.Duration
	// StitchTimeout bounds one stitch attempt. A run that finds the stitch
	// lock of an interrupted run waits for that stitch's output until the
	// lock is this old, then stitches itself (default 15m).
	StitchTimeout time.Duration
	// Cost prices the status's usage (default: the local platform, free).
	Cost cost.Model
	// Budget caps every job's spending; a spec's budget may only lower it.
	Budget job.Budget
	// LeaseTTL is how long a job's lease lasts without renewal; a crashed
	// orchestrator's job can be resumed after it (default 30s, shorter than
	// the minute Lambda waits before retrying an event).
	LeaseTTL time.Duration
	// ThrottleBudget is how long a chunk keeps retrying while the platform
	// throttles its invocations before the job fails (default 30m).
	ThrottleBudget time.Duration
	// Hedge tunes hedged chunks (on unless Hedge.Share is negative; a spec
	// may turn them off for its job).
	Hedge HedgePolicy
	// MetricsEMF writes the job's end-of-job metrics line in CloudWatch
	// Embedded Metric Format (on Lambda); otherwise it is a plain
	// structured line (pkg/metrics).
	MetricsEMF bool
	// Webhooks sends a spec's webhook when its job ends; nil when the
	// deployment has no signing key (such jobs end without one, logged).
	Webhooks WebhookSender
}

// WebhookSender delivers a signed POST (pkg/webhook.Sender).
type WebhookSender interface {
	Send(ctx context.Context, url, id string, body []byte) error
}

// The defaults of Config, in one place: the environment (pkg/config)
// leaves a setting zero when it is not given.
const (
	DefaultStatusInterval     = time.Second
	DefaultCancelPollInterval = 2 * time.Second
	DefaultChunkGrace         = 2 * time.Minute
	DefaultStitchTimeout      = 15 * time.Minute
	DefaultLeaseTTL           = 30 * time.Second
	DefaultThrottleBudget     = 30 * time.Minute
)

func (c Config) withDefaults() Config {
	if c.Concurrency <= 0 {
		c.Concurrency = runtime.NumCPU()
	}
	c.StatusInterval = positiveOr(c.StatusInterval, DefaultStatusInterval)
	c.CancelPollInterval = positiveOr(c.CancelPollInterval, DefaultCancelPollInterval)
	c.ChunkGrace = positiveOr(c.ChunkGrace, DefaultChunkGrace)
	c.StitchTimeout = positiveOr(c.StitchTimeout, DefaultStitchTimeout)
	c.LeaseTTL = positiveOr(c.LeaseTTL, DefaultLeaseTTL)
	c.ThrottleBudget = positiveOr(c.ThrottleBudget, DefaultThrottleBudget)
	if c.Cost.Platform == "" {
		c.Cost, _ = cost.Default(cost.Local)
	}
	return c
}

func positiveOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// Orchestrator runs the jobs of one store.
type Orchestrator struct {
	store    *jobstore.Store
	workers  WorkerAdapter
	stitcher Stitcher
	cfg      Config
	log      *slog.Logger
}

// New makes an Orchestrator.
func New(store *jobstore.Store, workers WorkerAdapter, stitcher Stitcher, cfg Config, log *slog.Logger) *Orchestrator {
	if log == nil {
		log = slog.Default()
	}
	return &Orchestrator{store: store, workers: workers, stitcher: stitcher, cfg: cfg.withDefaults(), log: log}
}

// Store is the store whose jobs o runs.
func (o *Orchestrator) Store() *jobstore.Store { return o.store }

// RunOptions are per-run hooks.
type RunOptions struct {
	// Progress is called after each change of the job's progress with a
	// snapshot (without the per-chunk list). It must be quick.
	Progress func(job.Status)
	// Exclusive says that no other orchestrator can be running the job (the
	// CLI holds a per-job file lock on its local folder): a lease or stitch
	// lock left by an earlier run belongs to a process that is gone, and is
	// taken over at once instead of after it expires.
	Exclusive bool
}

// RunKey runs the job uploaded at jobs/<id>.json: what an S3 or GCS upload
// event triggers. An invalid spec is refused before anything is written.
func (o *Orchestrator) RunKey(ctx context.Context, key string, opts RunOptions) (*job.Status, error) {
	spec, err := o.store.Uploaded(ctx, key)
	if err != nil {
		return nil, err
	}
	return o.Run(ctx, spec, opts)
}

// Resume runs again the job whose spec was accepted before, re-rendering
// only the chunks without a completion marker.
func (o *Orchestrator) Resume(ctx context.Context, id string, opts RunOptions) (*job.Status, error) {
	spec, err := o.store.Resumable(ctx, id)
	if err != nil {
		return nil, err
	}
	return o.Run(ctx, spec, opts)
}
