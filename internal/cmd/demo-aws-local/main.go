// Command demo-aws-local tries the AWS Lambda path with no AWS account, the
// way `sam local` would inside Docker: it builds the three bootstraps, runs
// them under the Lambda Runtime Interface Emulator (three worker execution
// environments), starts an S3-compatible server on loopback, uploads the
// job spec to jobs/<id>.json, fires the orchestrator with the sample S3 put
// event, and downloads the video. It then checks the video frame by frame
// against the same job rendered by the local adapter.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"

	"github.com/helios-project/infrastructure/internal/awslocal"
	"github.com/helios-project/infrastructure/internal/demo"
	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/jobstore"
	"github.com/helios-project/infrastructure/pkg/layout"
	"github.com/helios-project/infrastructure/pkg/sandbox"
	"github.com/helios-project/infrastructure/pkg/storage"
)

func main() {
	sandbox.Main() // the local reference render confines its commands
	specPath := flag.String("spec", "examples/jobs/demo.json", "job spec to render")
	eventPath := flag.String("event", "events/s3-put.json", "S3 put event fired at the orchestrator")
	out := flag.String("out", "out/demo-aws.mp4", "where to save the video")
	flag.Parse()
	if err := run(context.Background(), *specPath, *eventPath, *out); err != nil {
		fmt.Fprintln(os.Stderr, "demo-aws-local:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, specPath, eventPath, out string) error {
	specData, err := os.ReadFile(specPath)
	if err != nil {
		return err
	}
	ev, key, id, err := readEvent(eventPath)
	if err != nil {
		return err
	}

	work, err := os.MkdirTemp("", "helios-aws-local-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	step("building the bootstraps and starting the emulated stack (Lambda emulator ×6, S3 on loopback)")
	stack, err := awslocal.StartStack(ctx, awslocal.StackOptions{WorkDir: work})
	if err != nil {
		return err
	}
	defer stack.Close()
	fmt.Printf("  Lambda API %s, S3 %s, bucket %s\n", stack.Lambda.URL, stack.S3.Endpoint, awslocal.BucketName)

	step("uploading " + specPath + " to s3://" + awslocal.BucketName + "/" + key)
	if err := stack.Bucket.WriteAll(ctx, key, specData, nil); err != nil {
		return err
	}
	step("invoking " + awslocal.OrchestratorFunction + " with " + eventPath)
	st, wall, err := invokeOrchestrator(ctx, stack, ev, id)
	if err != nil {
		return err
	}
	if err := download(ctx, stack, st.Output, out); err != nil {
		return err
	}
	fmt.Printf("  %s: %d frames in %d chunks, %d worker and %d stitcher invocations, %.2f s\n", out, st.FramesDone, st.ChunksTotal,
		stack.Lambda.Calls(awslocal.WorkerFunction), stack.Lambda.Calls(awslocal.StitcherFunction), wall.Seconds())

	step("rendering the same job with the local adapter and comparing frame by frame")
	n, err := demo.CompareWithLocal(ctx, specData, id, work, out, st.TotalFrames)
	if err != nil {
		return err
	}
	fmt.Printf("  frame-exact: all %d frames match the local render\n", n)
	return nil
}

// readEvent reads the S3 put event to fire and the job it is about: the
// key it names must be jobs/<id>.json, as the orchestrator requires.
func readEvent(eventPath string) (ev events.S3Event, key, id string, err error) {
	data, err := os.ReadFile(eventPath)
	if err != nil {
		return ev, "", "", err
	}
	if err := json.Unmarshal(data, &ev); err != nil {
		return ev, "", "", fmt.Errorf("%s: %w", eventPath, err)
	}
	key = ev.Records[0].S3.Object.Key
	id, ok := layout.JobIDFromKey(key)
	if !ok {
		return ev, "", "", fmt.Errorf("%s names %q, not jobs/<id>.json", eventPath, key)
	}
	return ev, key, id, nil
}

// invokeOrchestrator fires the orchestrator with ev, synchronously as S3's
// notification would, and returns the job's status, which must be done,
// with how long the invocation took.
func invokeOrchestrator(ctx context.Context, stack *awslocal.Stack, ev events.S3Event, id string) (*job.Status, time.Duration, error) {
	payload, _ := json.Marshal(ev)
	start := time.Now()
	res, err := stack.Client.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String(awslocal.OrchestratorFunction), Payload: payload})
	if err != nil {
		return nil, 0, err
	}
	if res.FunctionError != nil {
		return nil, 0, fmt.Errorf("orchestrator failed: %s", res.Payload)
	}
	wall := time.Since(start)
	st, err := jobstore.New(stack.Bucket, nil, nil).Status(ctx, id)
	if err != nil {
		return nil, 0, err
	}
	if st.State != job.StateDone {
		return nil, 0, fmt.Errorf("job %s ended %s: %v", id, st.State, st.Error)
	}
	return st, wall, nil
}

// download saves the video at key in the stack's bucket to out, replacing
// any file there.
func download(ctx context.Context, stack *awslocal.Stack, key, out string) error {
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	os.Remove(out)
	_, err := storage.DownloadFile(ctx, stack.Bucket, key, out)
	return err
}

func step(msg string) { demo.Step(msg) }
