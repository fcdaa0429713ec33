// Command cdk is the AWS CDK app that deploys Helios: `cdk synth` and
// `cdk deploy` run it (see cdk.json). Settings come from CDK context; the
// function zips and the ffmpeg layer must be built first (make package layer).
package main

import (
	"fmt"
	"os"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"
)

func main() {
	defer jsii.Close()
	app := awscdk.NewApp(nil)
	settings, err := settingsFromContext(app)
	if err != nil {
		fmt.Fprintln(os.Stderr, "helios cdk:", err)
		os.Exit(1)
	}
	for _, path := range []string{settings.LayerZip, settings.LambdaDir + "/orchestrator.zip", settings.LambdaDir + "/worker.zip", settings.LambdaDir + "/stitcher.zip"} {
		if _, err := os.Stat(path); err != nil {
			fmt.Fprintf(os.Stderr, "helios cdk: %s is missing: run `make package layer` first\n", path)
			os.Exit(1)
		}
	}
	if settings.BrowserWorker {
		if _, err := os.Stat(settings.SourceDir + "/" + BrowserWorkerDockerfile); err != nil {
			fmt.Fprintf(os.Stderr, "helios cdk: the browser worker's Dockerfile is missing (%v): set sourceDir to the repository root, or -c browserWorker=false\n", err)
			os.Exit(1)
		}
	}
	NewHeliosRenderStack(app, settings)
	app.Synth(nil)
}
