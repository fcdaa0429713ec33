package pipeline

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/helios-project/infrastructure/pkg/config"
	"github.com/helios-project/infrastructure/pkg/execx"
	"github.com/helios-project/infrastructure/pkg/sandbox"
	"github.com/helios-project/infrastructure/pkg/serve"
)

// Main is the whole main of a function binary: it serves function name
// (orchestrator, worker or stitcher) built from the environment, until
// SIGTERM, with JSON logs on stderr. It exits with status 1 if start-up
// fails. A process started as the sandbox launcher of a job command
// (pkg/sandbox) runs that instead.
func Main(name string) {
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
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.OnCloudRun {
		opts.ReplaceAttr = cloudLogging
	}
	log = slog.New(slog.NewJSONHandler(os.Stderr, opts)).With("function", name)
	stack, err := Open(ctx, cfg, log)
	if err != nil {
		log.Error("open storage", "error", err)
		os.Exit(1)
	}
	defer stack.Close()
	fn, err := stack.Function(ctx, name)
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

// cloudLogging names a line's level and message as Cloud Logging reads
// them from a JSON log line: severity (WARNING, not WARN) and message.
func cloudLogging(groups []string, a slog.Attr) slog.Attr {
	if len(groups) > 0 {
		return a
	}
	switch a.Key {
	case slog.LevelKey:
		level := a.Value.Any().(slog.Level)
		severity := map[slog.Level]string{slog.LevelDebug: "DEBUG", slog.LevelInfo: "INFO", slog.LevelWarn: "WARNING", slog.LevelError: "ERROR"}[level]
		if severity == "" {
			severity = level.String()
		}
		return slog.String("severity", severity)
	case slog.MessageKey:
		return slog.String("message", a.Value.String())
	}
	return a
}
