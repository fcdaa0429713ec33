// Command worker is the chunk worker function: WorkerJob in, WorkerResult out.
package main

import (
	"context"
	"log/slog"

	"gocloud.dev/blob"

	"github.com/helios-project/infrastructure/internal/app"
	"github.com/helios-project/infrastructure/pkg/config"
	"github.com/helios-project/infrastructure/pkg/pipeline"
	"github.com/helios-project/infrastructure/pkg/serve"
)

func main() {
	app.Main("worker", func(_ context.Context, b *blob.Bucket, cfg config.Config, log *slog.Logger) (serve.Function, error) {
		h, err := pipeline.Worker(b, cfg, log)
		return serve.Function{Handler: h}, err
	})
}
