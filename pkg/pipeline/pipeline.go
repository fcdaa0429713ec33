// Package pipeline wires the stages together from a Config: the worker and
// stitcher handlers, the adapter that reaches them, and the orchestrator.
// The functions' main packages and the CLI call it, so there is one place
// that knows how the parts fit.
package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"gocloud.dev/blob"

	"github.com/helios-project/infrastructure/pkg/adapter"
	"github.com/helios-project/infrastructure/pkg/config"
	"github.com/helios-project/infrastructure/pkg/execx"
	"github.com/helios-project/infrastructure/pkg/ffmpeg"
	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/jobstore"
	"github.com/helios-project/infrastructure/pkg/orchestrator"
	"github.com/helios-project/infrastructure/pkg/sandbox"
	"github.com/helios-project/infrastructure/pkg/serve"
	"github.com/helios-project/infrastructure/pkg/stitch"
	"github.com/helios-project/infrastructure/pkg/storage"
	"github.com/helios-project/infrastructure/pkg/trigger"
	"github.com/helios-project/infrastructure/pkg/worker"
)

// Worker is the chunk worker function. Its commands run confined (see
// pkg/sandbox): the binary serving it must call sandbox.Main first.
func Worker(b *blob.Bucket, cfg config.Config, log *slog.Logger) (serve.Handler[job.WorkerJob, job.WorkerResult], error) {
	runner := &execx.Runner{Allowed: cfg.Allowed}
	launcher, err := sandbox.Self(cfg.CommandNetwork)
	switch {
	case errors.Is(err, sandbox.ErrUnsupported):
		log.Warn("job commands run unconfined", "why", err)
	case err != nil:
		return nil, err
	default:
		runner.Confiner = launcher
		s := sandbox.Probe(cfg.CommandNetwork)
		level := slog.LevelInfo
		if !s.Complete() {
			level = slog.LevelWarn
		}
		log.Log(context.Background(), level, "job commands are confined", "landlockABI", s.LandlockABI, "seccomp", s.Seccomp, "network", cfg.CommandNetwork, "limits", s.Limits)
	}
	h := &worker.Handler{Bucket: b, Runner: runner, Frames: ffmpeg.New(), Plans: accepted(b), Logger: log}
	return h.Handle, nil
}

// Stitcher is the stitcher function.
func Stitcher(b *blob.Bucket, log *slog.Logger) serve.Handler[job.StitchRequest, job.StitchResult] {
	tool := ffmpeg.New()
	h := &stitch.Handler{Bucket: b, Stitcher: &stitch.FfmpegStitcher{Tool: tool}, Frames: tool, Plans: accepted(b), Logger: log}
	return h.Handle
}

// accepted reads the accepted specs the worker and stitcher check their
// payloads against.
func accepted(b *blob.Bucket) jobstore.Plans {
	return func(ctx context.Context, id string) (*job.Spec, error) { return jobstore.Accepted(ctx, b, id) }
}

// Adapter returns the adapter cfg asks for: the functions in this process,
// on AWS Lambda, or on Cloud Run.
func Adapter(ctx context.Context, b *blob.Bucket, cfg config.Config, log *slog.Logger) (*adapter.Adapter, error) {
	switch cfg.Adapter {
	case config.AdapterLocal:
		w, err := Worker(b, cfg, log)
		if err != nil {
			return nil, err
		}
		return adapter.New(adapter.NewLocal(w, Stitcher(b, log), cfg.Concurrency)), nil
	case config.AdapterLambda:
		client, err := adapter.NewLambdaClient(ctx)
		if err != nil {
			return nil, err
		}
		return adapter.New(adapter.NewLambda(client, cfg.WorkerFunction, cfg.StitcherFunction)), nil
	case config.AdapterCloudRun:
		d, err := adapter.NewCloudRun(ctx, cfg.WorkerURL, cfg.StitcherURL, adapter.GoogleIDTokens, adapter.WithLocalToken(cfg.HTTPToken))
		if err != nil {
			return nil, err
		}
		return adapter.New(d), nil
	}
	return nil, fmt.Errorf("adapter %q is not available in this build", cfg.Adapter)
}

// Orchestrator returns an orchestrator reaching its workers through a.
func Orchestrator(b *blob.Bucket, a *adapter.Adapter, cfg config.Config, log *slog.Logger) *orchestrator.Orchestrator {
	return orchestrator.New(b, a, a, orchestrator.Config{
		Allowed:             cfg.Allowed,
		Concurrency:         cfg.Concurrency,
		StatusInterval:      cfg.StatusInterval,
		StitchTimeout:       cfg.StitchTimeout,
		CostPerWorkerSecond: cfg.CostPerWorkerSecond,
	}, log)
}

// Trigger is the orchestrator function's handler. A job that outlives one
// invocation continues in the next: on Lambda the function invokes itself
// asynchronously with {"jobId"}; over HTTP (Cloud Run) it publishes
// {"jobId"} to HELIOS_CONTINUE_TOPIC, whose push subscription delivers it
// back, and stops HELIOS_REQUEST_TIMEOUT less the margin after a request
// began.
func Trigger(ctx context.Context, b *blob.Bucket, cfg config.Config, log *slog.Logger) (*trigger.Handler, error) {
	a, err := Adapter(ctx, b, cfg, log)
	if err != nil {
		return nil, err
	}
	h := &trigger.Handler{
		Orch:           Orchestrator(b, a, cfg, log),
		Bucket:         b,
		BucketName:     storage.BucketName(cfg.StorageURL),
		RequestTimeout: cfg.RequestTimeout,
		Log:            log,
	}
	if cfg.OnLambda && cfg.LambdaFunctionName != "" {
		client, err := adapter.NewLambdaClient(ctx)
		if err != nil {
			return nil, err
		}
		self := cfg.LambdaFunctionName
		h.Continue = func(ctx context.Context, in trigger.Invoke) error {
			payload, _ := json.Marshal(in)
			return adapter.InvokeAsync(ctx, client, self, payload)
		}
	}
	if !cfg.OnLambda {
		h.Stopping = ctx
	}
	if cfg.OnCloudRun && cfg.ContinueTopic == "" {
		// Past the push's ack deadline nobody waits for the answer: without a
		// topic to continue through, a long or failed run would strand its job.
		return nil, fmt.Errorf("on Cloud Run the orchestrator needs %s (the Pub/Sub topic that pushes to it) to continue jobs longer than a request", config.EnvContinueTopic)
	}
	if !cfg.OnLambda && cfg.ContinueTopic != "" {
		topic, err := adapter.OpenTopic(ctx, cfg.ContinueTopic)
		if err != nil {
			return nil, err
		}
		h.Continue = func(ctx context.Context, in trigger.Invoke) error {
			payload, _ := json.Marshal(in)
			return topic.Publish(ctx, payload, map[string]string{"helios": "continue"})
		}
	}
	return h, nil
}
