// Command stitcher is the stitcher function: StitchRequest in, StitchResult out.
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
	app.Main("stitcher", func(_ context.Context, b *blob.Bucket, cfg config.Config, log *slog.Logger) (serve.Function, error) {
		h := pipeline.Stitcher(b, log)
		// Over HTTP a stitch outlives an orchestrator that stopped waiting
		// for it (as on Lambda): the run resuming the job finds its output.
		// One at a time, as the service's concurrency says: /tmp is memory.
		return serve.Function{Handler: h, HTTP: serve.DetachedHTTPHandler(h, cfg.StitchTimeout, 1)}, nil
	})
}
