// Command worker is the chunk worker function: WorkerJob in, WorkerResult out.
package main

import (
	"log/slog"

	"github.com/aws/aws-lambda-go/lambda"
	"gocloud.dev/blob"

	"github.com/helios-project/infrastructure/internal/app"
	"github.com/helios-project/infrastructure/pkg/config"
	"github.com/helios-project/infrastructure/pkg/pipeline"
)

func main() {
	app.Main("worker", func(b *blob.Bucket, cfg config.Config, log *slog.Logger) (lambda.Handler, error) {
		return pipeline.Worker(b, cfg, log), nil
	})
}
