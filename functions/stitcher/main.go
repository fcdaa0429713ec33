// Command stitcher is the stitcher function: StitchRequest in, StitchResult out.
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
	app.Main("stitcher", func(b *blob.Bucket, _ config.Config, log *slog.Logger) (lambda.Handler, error) {
		return pipeline.Stitcher(b, log), nil
	})
}
