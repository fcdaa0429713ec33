// Command orchestrator is the orchestrator function. On Lambda it takes an
// S3 upload event, an HTTP request (Function URL / HTTP API) or a direct
// {"jobId": "..."}; over HTTP (Cloud Run) it serves the REST API and takes
// upload events as CloudEvents or Pub/Sub pushes. It reaches the worker and
// stitcher through the adapter HELIOS_ADAPTER names.
package main

import "github.com/helios-project/infrastructure/pkg/pipeline"

func main() { pipeline.Main("orchestrator") }
