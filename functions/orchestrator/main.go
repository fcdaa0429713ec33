// Command orchestrator is the orchestrator function. It takes an S3 upload
// event, an HTTP request (Function URL / HTTP API) or a direct
// {"jobId": "..."} and reaches the worker and stitcher through the adapter
// HELIOS_ADAPTER names.
package main

import (
	"context"
	"log/slog"

	"github.com/aws/aws-lambda-go/lambda"
	"gocloud.dev/blob"

	"github.com/helios-project/infrastructure/internal/app"
	"github.com/helios-project/infrastructure/pkg/config"
	"github.com/helios-project/infrastructure/pkg/pipeline"
)

func main() {
	app.Main("orchestrator", func(b *blob.Bucket, cfg config.Config, log *slog.Logger) (lambda.Handler, error) {
		h, err := pipeline.Trigger(context.Background(), b, cfg, log)
		if err != nil {
			return nil, err
		}
		return h.Lambda(), nil
	})
}
