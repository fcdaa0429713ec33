// Command demo-gcp-local tries the Google Cloud Run path with no Google
// account: it builds the three functions, serves each with
// functions-framework on a loopback port behind a front that acts as Cloud
// Run (three worker instances of concurrency 1), starts a GCS server whose
// bucket notifies uploads under jobs/ to a Pub/Sub topic pushed to the
// orchestrator (as infra/cloudrun/deploy.sh sets it up), uploads the job
// spec to jobs/<id>.json, and waits for the video. It then checks the video
// frame by frame against the same job rendered by the local adapter.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/helios-project/infrastructure/internal/demo"
	"github.com/helios-project/infrastructure/internal/gcplocal"
	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/jobstore"
	"github.com/helios-project/infrastructure/pkg/layout"
	"github.com/helios-project/infrastructure/pkg/sandbox"
	"github.com/helios-project/infrastructure/pkg/storage"
)

func main() {
	sandbox.Main() // the local reference render confines its commands
	specPath := flag.String("spec", "examples/jobs/demo.json", "job spec to render")
	out := flag.String("out", "out/demo-gcp.mp4", "where to save the video")
	timeout := flag.Duration("timeout", 10*time.Minute, "how long to wait for the job")
	flag.Parse()
	if err := run(context.Background(), *specPath, *out, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "demo-gcp-local:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, specPath, out string, timeout time.Duration) error {
	specData, err := os.ReadFile(specPath)
	if err != nil {
		return err
	}
	id := job.PeekID(specData)
	if id == "" {
		id = strings.TrimSuffix(filepath.Base(specPath), filepath.Ext(specPath))
	}
	if !layout.ValidID(id) {
		return fmt.Errorf("%s: no usable job id (give the spec an \"id\")", specPath)
	}
	key := layout.JobKey(id)

	work, err := os.MkdirTemp("", "helios-gcp-local-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	demo.Step("building the functions and starting the emulated deployment (Cloud Run services, GCS, Pub/Sub on loopback)")
	stack, err := gcplocal.StartStack(ctx, gcplocal.StackOptions{WorkDir: work})
	if err != nil {
		return err
	}
	defer stack.Close()
	fmt.Printf("  orchestrator %s, worker %s (3 instances), stitcher %s\n", stack.Orchestrator.URL, stack.Worker.URL, stack.Stitcher.URL)
	fmt.Printf("  GCS %s (bucket %s), Pub/Sub %s: uploads under jobs/ → topic %s → push subscription %s\n",
		stack.GCS.Host, gcplocal.BucketName, stack.PubSub.Host, gcplocal.JobsTopic, gcplocal.JobsSubscription)

	demo.Step("uploading " + specPath + " to gs://" + gcplocal.BucketName + "/" + key + " (as gcloud storage cp would)")
	start := time.Now()
	if err := stack.Bucket.WriteAll(ctx, key, specData, nil); err != nil {
		return err
	}
	demo.Step("the upload's notification is pushed to " + gcplocal.OrchestratorService + "; waiting for the job")
	st, err := wait(ctx, stack, id, timeout)
	if err != nil {
		return err
	}
	wall := time.Since(start)
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	os.Remove(out)
	if _, err := storage.DownloadFile(ctx, stack.Bucket, st.Output, out); err != nil {
		return err
	}
	fmt.Printf("  %s: %d frames in %d chunks, %d worker and %d stitcher requests, %d push deliveries, %.2f s\n", out,
		st.FramesDone, st.ChunksTotal, stack.Worker.Calls(), stack.Stitcher.Calls(),
		stack.PubSub.Deliveries(gcplocal.JobsSubscription), wall.Seconds())

	demo.Step("rendering the same job with the local adapter and comparing frame by frame")
	n, err := demo.CompareWithLocal(ctx, specData, id, work, out, st.TotalFrames)
	if err != nil {
		return err
	}
	fmt.Printf("  frame-exact: all %d frames match the local render\n", n)
	return nil
}

// wait polls the status until the job ends, printing progress.
func wait(ctx context.Context, stack *gcplocal.Stack, id string, timeout time.Duration) (*job.Status, error) {
	deadline := time.Now().Add(timeout)
	last := -1
	for time.Now().Before(deadline) {
		st, err := jobstore.New(stack.Bucket, nil, nil).Status(ctx, id)
		if err == nil {
			if st.ChunksDone != last && st.ChunksTotal > 0 {
				fmt.Printf("  %s: %d/%d chunks\n", st.State, st.ChunksDone, st.ChunksTotal)
				last = st.ChunksDone
			}
			if st.State.Final() {
				if st.State != job.StateDone {
					return nil, fmt.Errorf("job %s ended %s: %v", id, st.State, st.Error)
				}
				return st, nil
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return nil, fmt.Errorf("job %s did not finish in %s", id, timeout)
}
