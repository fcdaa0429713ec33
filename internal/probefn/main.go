// Command probefn serves the adapter conformance suite's probe handlers as a
// function (PROBE_FUNCTION=worker or stitcher), so remote transports are
// tested against the same behaviour as the local one.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/helios-project/infrastructure/pkg/adapter/adaptertest"
	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/serve"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	var h lambda.Handler = serve.Handler[job.WorkerJob, job.WorkerResult](adaptertest.ProbeWorker)
	if os.Getenv("PROBE_FUNCTION") == "stitcher" {
		h = serve.Handler[job.StitchRequest, job.StitchResult](adaptertest.ProbeStitcher)
	}
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	platform := serve.Platform{Lambda: os.Getenv("AWS_LAMBDA_RUNTIME_API") != "", Port: port, Token: os.Getenv("HELIOS_HTTP_TOKEN")}
	if err := serve.Start(context.Background(), serve.Function{Handler: h}, platform, log); err != nil {
		log.Error("serve", "error", err)
		os.Exit(1)
	}
}
