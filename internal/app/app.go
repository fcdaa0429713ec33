// Package app is the start-up shared by the three function binaries: read
// the configuration, set up JSON logging, open the bucket, serve.
package app

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"gocloud.dev/blob"

	"github.com/helios-project/infrastructure/pkg/config"
	"github.com/helios-project/infrastructure/pkg/execx"
	"github.com/helios-project/infrastructure/pkg/sandbox"
	"github.com/helios-project/infrastructure/pkg/serve"
	"github.com/helios-project/infrastructure/pkg/storage"
)

// Main builds a handler from the environment and serves it; it exits the
// process with status 1 if start-up fails.
//
// When the process was started as the sandbox launcher of a job command
// (pkg/sandbox), it runs that instead.
func Main(name string, build func(ctx context.Context, b *blob.Bucket, cfg config.Config, log *slog.Logger) (serve.Function, error)) {
	sandbox.Main()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("function", name)
	if err := execx.ProtectEnviron(); err != nil {
		log.Warn("cannot hide this process's environment from the commands it runs", "error", err)
	}
	cfg, err := config.FromEnv(os.Getenv)
	if err != nil {
		log.Error("bad configuration", "error", err)
		os.Exit(1)
	}
	log = slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.LogLevel})).With("function", name)
	b, err := storage.Open(ctx, cfg.StorageURL)
	if err != nil {
		log.Error("open storage", "error", err)
		os.Exit(1)
	}
	defer b.Close()
	fn, err := build(ctx, b, cfg, log)
	if err != nil {
		log.Error("start-up", "error", err)
		os.Exit(1)
	}
	platform := serve.Platform{Lambda: cfg.OnLambda, Port: cfg.Port, Public: cfg.OnCloudRun, Token: cfg.HTTPToken}
	if err := serve.Start(ctx, fn, platform, log); err != nil {
		log.Error("serve", "error", err)
		os.Exit(1)
	}
}
