// Command orchestrator is the orchestrator function: it runs a job when one
// is uploaded or resumed, reaching the worker and stitcher through the
// adapter HELIOS_ADAPTER names.
package main

import (
	"context"
	"log/slog"

	"github.com/aws/aws-lambda-go/lambda"
	"gocloud.dev/blob"

	"github.com/helios-project/infrastructure/internal/app"
	"github.com/helios-project/infrastructure/pkg/config"
	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/pipeline"
	"github.com/helios-project/infrastructure/pkg/runtime"
	"github.com/helios-project/infrastructure/pkg/trigger"
)

func main() {
	app.Main("orchestrator", func(b *blob.Bucket, cfg config.Config, log *slog.Logger) (lambda.Handler, error) {
		a, err := pipeline.Adapter(b, cfg, log)
		if err != nil {
			return nil, err
		}
		orch := pipeline.Orchestrator(b, a, cfg, log)
		return runtime.Handler[trigger.Invoke, *job.Status](func(ctx context.Context, in trigger.Invoke) (*job.Status, error) {
			return trigger.HandleInvoke(ctx, orch, in)
		}), nil
	})
}
