// Command stitcher is the stitcher function: StitchRequest in, StitchResult out.
package main

import (
	"context"
	"log/slog"

	"gocloud.dev/blob"

	"github.com/helios-project/infrastructure/internal/app"
	"github.com/helios-project/infrastructure/pkg/config"
	"github.com/helios-project/infrastructure/pkg/pipeline"
	"github.com/helios-project/infrastructure/pkg/runtime"
)

func main() {
	app.Main("stitcher", func(_ context.Context, b *blob.Bucket, cfg config.Config, log *slog.Logger) (runtime.Function, error) {
		return runtime.Function{Handler: pipeline.Stitcher(b, log)}, nil
	})
}
