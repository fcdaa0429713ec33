// Package pipeline builds the Helios stack from a configuration: the job
// store on the bucket, the worker and stitcher handlers, the adapter that
// reaches them, the orchestrator, and the trigger that serves it. The three
// functions (Main) and the CLI both start here, so there is one place that
// knows how the parts fit.
package pipeline

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	awslambda "github.com/aws/aws-sdk-go-v2/service/lambda"
	"gocloud.dev/blob"

	"github.com/helios-project/infrastructure/pkg/adapter"
	"github.com/helios-project/infrastructure/pkg/config"
	"github.com/helios-project/infrastructure/pkg/execx"
	"github.com/helios-project/infrastructure/pkg/ffmpeg"
	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/jobstore"
	"github.com/helios-project/infrastructure/pkg/orchestrator"
	"github.com/helios-project/infrastructure/pkg/pagefetch"
	"github.com/helios-project/infrastructure/pkg/sandbox"
	"github.com/helios-project/infrastructure/pkg/serve"
	"github.com/helios-project/infrastructure/pkg/stitch"
	"github.com/helios-project/infrastructure/pkg/storage"
	"github.com/helios-project/infrastructure/pkg/trigger"
	"github.com/helios-project/infrastructure/pkg/webhook"
	"github.com/helios-project/infrastructure/pkg/worker"
)

// Stack is the parts of Helios one process uses, built from one
// configuration on one bucket. Its methods build each part when asked.
type Stack struct {
	Config config.Config
	Bucket *blob.Bucket
	Jobs   *jobstore.Store
	Log    *slog.Logger

	lambda *awslambda.Client // one client, for the adapter and the orchestrator's continuation
}

// Open opens the bucket cfg names and the job store on it.
func Open(ctx context.Context, cfg config.Config, log *slog.Logger) (*Stack, error) {
	b, err := storage.Open(ctx, cfg.StorageURL)
	if err != nil {
		return nil, err
	}
	return New(b, cfg, log), nil
}

// New is the stack on an open bucket (Close closes it).
func New(b *blob.Bucket, cfg config.Config, log *slog.Logger) *Stack {
	return &Stack{Config: cfg, Bucket: b, Jobs: jobstore.New(b, cfg.Allowed, log).WithFFmpeg(cfg.FFmpeg), Log: log}
}

// Close closes the bucket.
func (s *Stack) Close() error { return s.Bucket.Close() }

// Worker is the chunk worker function. Its commands run confined (see
// pkg/sandbox): the binary serving it must call sandbox.Main first.
func (s *Stack) Worker() (serve.Handler[job.WorkerJob, job.WorkerResult], error) {
	cfg, log := s.Config, s.Log
	runner := &execx.Runner{Allowed: cfg.Allowed, NotSelf: true}
	launcher, err := sandbox.Self(cfg.CommandNetwork)
	switch {
	case errors.Is(err, sandbox.ErrUnsupported):
		log.Warn("job commands run unconfined", "why", err)
	case err != nil:
		return nil, err
	default:
		runner.Confiner = launcher
		support := sandbox.Probe(cfg.CommandNetwork)
		level := slog.LevelInfo
		if !support.Complete() {
			level = slog.LevelWarn
		}
		log.Log(context.Background(), level, "job commands are confined", "landlockABI", support.LandlockABI, "seccomp", support.Seccomp, "noexec", support.NoExec, "network", cfg.CommandNetwork, "limits", support.Limits)
	}
	h := &worker.Handler{Store: s.Jobs, Runner: runner, Media: ffmpeg.New(), Plans: s.Jobs.Plans(), Logger: log}
	if !cfg.CommandNetwork {
		// Commands have no network: rendered pages get the allowed origins
		// from the worker, or a refusal that says how to allow one.
		f, err := pagefetch.New(cfg.RenderOrigins, pagefetch.Options{})
		if err != nil {
			return nil, err
		}
		h.Fetcher = f
		if len(cfg.RenderOrigins) > 0 {
			log.Info("rendered pages may load from these origins, fetched by the worker", "origins", cfg.RenderOrigins)
		}
	}
	return h.Handle, nil
}

// Stitcher is the stitcher function.
func (s *Stack) Stitcher() serve.Handler[job.StitchRequest, job.StitchResult] {
	tool := ffmpeg.New()
	h := &stitch.Handler{Store: s.Jobs, Stitcher: &stitch.FfmpegStitcher{Tool: tool}, Media: tool, Plans: s.Jobs.Plans(), Logger: s.Log}
	return h.Handle
}

// Adapter reaches the worker and stitcher where the configuration says they
// run: in this process, on AWS Lambda, or on Cloud Run.
func (s *Stack) Adapter(ctx context.Context) (*adapter.Adapter, error) {
	cfg := s.Config
	switch cfg.Adapter {
	case config.AdapterLocal:
		w, err := s.Worker()
		if err != nil {
			return nil, err
		}
		return adapter.New(adapter.NewLocal(w, s.Stitcher(), cfg.Concurrency)), nil
	case config.AdapterLambda:
		client, err := s.lambdaClient(ctx)
		if err != nil {
			return nil, err
		}
		return adapter.New(adapter.NewLambda(client, cfg.WorkerFunction, cfg.StitcherFunction).WithBrowserWorker(cfg.BrowserWorkerFunction)), nil
	case config.AdapterCloudRun:
		d, err := adapter.NewCloudRun(ctx, cfg.WorkerURL, cfg.StitcherURL, adapter.GoogleIDTokens,
			adapter.WithLocalToken(cfg.HTTPToken), adapter.WithBrowserWorkerURL(cfg.BrowserWorkerURL))
		if err != nil {
			return nil, err
		}
		return adapter.New(d), nil
	}
	return nil, fmt.Errorf("adapter %q is not available in this build", cfg.Adapter)
}

func (s *Stack) lambdaClient(ctx context.Context) (*awslambda.Client, error) {
	if s.lambda == nil {
		client, err := adapter.NewLambdaClient(ctx)
		if err != nil {
			return nil, err
		}
		s.lambda = client
	}
	return s.lambda, nil
}

// Orchestrator runs the store's jobs through the configured adapter.
func (s *Stack) Orchestrator(ctx context.Context) (*orchestrator.Orchestrator, error) {
	a, err := s.Adapter(ctx)
	if err != nil {
		return nil, err
	}
	key, err := webhookKey(ctx, s.Config)
	if err != nil {
		return nil, err
	}
	return s.orchestrator(a, key), nil
}

// OrchestratorWith runs the store's jobs through workers and stitcher of
// the caller's choosing (tests put faults between them), signing webhooks
// with HELIOS_WEBHOOK_SECRET as it is.
func (s *Stack) OrchestratorWith(a *adapter.Adapter) *orchestrator.Orchestrator {
	return s.orchestrator(a, s.Config.WebhookSecret)
}

// orchestrator builds the orchestrator from the stack's configuration,
// which it leaves as it is; key signs webhooks ("": none are sent).
func (s *Stack) orchestrator(a *adapter.Adapter, key string) *orchestrator.Orchestrator {
	cfg := s.Config
	ocfg := orchestrator.Config{
		Concurrency:    cfg.Concurrency,
		StatusInterval: cfg.StatusInterval,
		StitchTimeout:  cfg.StitchTimeout,
		LeaseTTL:       cfg.LeaseTTL,
		Cost:           cfg.Cost,
		Budget:         cfg.Budget,
		MetricsEMF:     cfg.OnLambda,
		Hedge:          orchestrator.HedgePolicy{Share: cfg.HedgeShare},
	}
	if cfg.HedgeShare == 0 {
		ocfg.Hedge.Share = -1 // off
	}
	if key != "" {
		ocfg.Webhooks = &webhook.Sender{Key: []byte(key), AllowPrivate: cfg.WebhookAllowPrivate}
	}
	return orchestrator.New(s.Jobs, a, a, ocfg, s.Log)
}

// Trigger is the orchestrator function's handler. A job that outlives one
// invocation continues in the next: on Lambda the function invokes itself
// asynchronously with {"jobId"}; over HTTP (Cloud Run) it publishes
// {"jobId"} to HELIOS_CONTINUE_TOPIC, whose push subscription delivers it
// back, and stops HELIOS_REQUEST_TIMEOUT less the margin after a request
// began. stopping ends when the process is told to stop (SIGTERM).
func (s *Stack) Trigger(ctx context.Context) (*trigger.Handler, error) {
	cfg := s.Config
	if cfg.OnCloudRun && cfg.ContinueTopic == "" {
		// Past the push's ack deadline nobody waits for the answer: without a
		// topic to continue through, a long or failed run would strand its job.
		return nil, fmt.Errorf("on Cloud Run the orchestrator needs %s (the Pub/Sub topic that pushes to it) to continue jobs longer than a request", config.EnvContinueTopic)
	}
	orch, err := s.Orchestrator(ctx)
	if err != nil {
		return nil, err
	}
	h := &trigger.Handler{
		Orch:           orch,
		Jobs:           s.Jobs,
		BucketName:     storage.BucketName(cfg.StorageURL),
		RequestTimeout: cfg.RequestTimeout,
		// A continuation may find the run it continues still holding the
		// lease: it waits a little longer than a lease lives.
		ResumeWait: cmp.Or(cfg.LeaseTTL, orchestrator.DefaultLeaseTTL) + 10*time.Second,
		Log:        s.Log,
	}
	switch {
	case cfg.OnLambda && cfg.LambdaFunctionName != "":
		client, err := s.lambdaClient(ctx)
		if err != nil {
			return nil, err
		}
		self := cfg.LambdaFunctionName
		h.Continue = func(ctx context.Context, in trigger.Invoke) error {
			payload, _ := json.Marshal(in)
			return adapter.InvokeAsync(ctx, client, self, payload)
		}
	case !cfg.OnLambda && cfg.ContinueTopic != "":
		topic, err := adapter.OpenTopic(ctx, cfg.ContinueTopic)
		if err != nil {
			return nil, err
		}
		h.Continue = func(ctx context.Context, in trigger.Invoke) error {
			payload, _ := json.Marshal(in)
			return topic.Publish(ctx, payload, map[string]string{"helios": "continue"})
		}
	}
	if !cfg.OnLambda {
		h.Stopping = ctx
	}
	return h, nil
}

// Function is one of the three functions as the platforms serve it.
func (s *Stack) Function(ctx context.Context, name string) (serve.Function, error) {
	switch name {
	case "orchestrator":
		h, err := s.Trigger(ctx)
		if err != nil {
			return serve.Function{}, err
		}
		return serve.Function{Handler: h.Lambda(), HTTP: h.HTTP()}, nil
	case "worker":
		h, err := s.Worker()
		return serve.Function{Handler: h}, err
	case "stitcher":
		h := s.Stitcher()
		// Over HTTP a stitch outlives an orchestrator that stopped waiting
		// for it (as on Lambda): the run resuming the job finds its output.
		// One at a time, as the service's concurrency says: /tmp is memory.
		return serve.Function{Handler: h, HTTP: serve.DetachedHTTPHandler(h, cmp.Or(s.Config.StitchTimeout, orchestrator.DefaultStitchTimeout), 1)}, nil
	}
	return serve.Function{}, fmt.Errorf("no function %q: orchestrator, worker or stitcher", name)
}
