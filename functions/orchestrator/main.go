// Command orchestrator is the orchestrator function. On Lambda it takes an
// S3 upload event, an HTTP request (Function URL / HTTP API) or a direct
// {"jobId": "..."}; over HTTP (Cloud Run) it serves the REST API and takes
// upload events as CloudEvents or Pub/Sub pushes. It reaches the worker and
// stitcher through the adapter HELIOS_ADAPTER names.
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
	app.Main("orchestrator", func(ctx context.Context, b *blob.Bucket, cfg config.Config, log *slog.Logger) (serve.Function, error) {
		h, err := pipeline.Trigger(ctx, b, cfg, log)
		if err != nil {
			return serve.Function{}, err
		}
		return serve.Function{Handler: h.Lambda(), HTTP: h.HTTP()}, nil
	})
}
