package adapter_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/lambda"

	"github.com/helios-project/infrastructure/internal/awslocal"
	"github.com/helios-project/infrastructure/pkg/adapter"
	"github.com/helios-project/infrastructure/pkg/adapter/adaptertest"
	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/joberr"
)

// startProbeLambda runs the probe function under the Lambda emulator:
// `instances` workers, one stitcher and one more worker, probe-browser (the
// browser worker's stand-in), behind the Lambda API endpoint.
func startProbeLambda(t testing.TB, instances int) *awslocal.Lambda {
	t.Helper()
	rie, err := awslocal.FindRIE()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bootstrap, err := awslocal.BuildBootstrap(context.Background(), "github.com/helios-project/infrastructure/internal/probefn", filepath.Join(dir, "probe"))
	if err != nil {
		t.Fatal(err)
	}
	l, err := awslocal.StartLambda(context.Background(), rie, dir,
		awslocal.Function{Name: "probe-worker", Bootstrap: bootstrap, Instances: instances, Env: map[string]string{"PROBE_FUNCTION": "worker"}},
		awslocal.Function{Name: "probe-stitcher", Bootstrap: bootstrap, Env: map[string]string{"PROBE_FUNCTION": "stitcher"}},
		awslocal.Function{Name: "probe-browser", Bootstrap: bootstrap, Env: map[string]string{"PROBE_FUNCTION": "worker"}},
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return l
}

func lambdaClient(endpoint string) *lambda.Client {
	return lambda.NewFromConfig(aws.Config{
		Region:       awslocal.Region,
		Credentials:  credentials.NewStaticCredentialsProvider(awslocal.AccessKeyID, awslocal.SecretAccessKey, ""),
		BaseEndpoint: aws.String(endpoint),
	})
}

func TestLambdaConformance(t *testing.T) {
	l := startProbeLambda(t, 4)
	client := lambdaClient(l.URL)
	adaptertest.RunConformance(t, adaptertest.Options{Concurrency: 4}, func(t *testing.T) *adapter.Adapter {
		return adapter.New(adapter.NewLambda(client, "probe-worker", "arn:aws:lambda:us-east-1:123456789012:function:probe-stitcher"))
	})
}

// Throttling is retried by the SDK with backoff; the caller never sees it.
func TestLambdaThrottlingIsRetried(t *testing.T) {
	l := startProbeLambda(t, 1)
	client, err := clientFromEnv(t, l.URL)
	if err != nil {
		t.Fatal(err)
	}
	a := adapter.New(adapter.NewLambda(client, "probe-worker", "probe-stitcher"))
	l.Throttle("probe-worker", 2)
	w := job.WorkerJob{JobID: "t", Chunk: job.Chunk{Count: 1}, Attempt: 1, Command: adaptertest.ProbeEcho, OutputFile: "a.mp4"}
	if _, err := a.Execute(t.Context(), w); err != nil {
		t.Fatalf("Execute after 2 throttles: %v", err)
	}
	if got := l.Calls("probe-worker"); got != 1 {
		t.Errorf("%d invocations reached the function, want 1", got)
	}

	// Past the SDK's retries, throttling is a retryable error for the orchestrator.
	l.Throttle("probe-worker", 100)
	_, err = a.Execute(t.Context(), w)
	var e *joberr.Error
	if !errors.As(err, &e) || e.Kind != joberr.Retryable || e.Code != joberr.CodeThrottled {
		t.Fatalf("Execute while throttled: %v, want retryable throttled", err)
	}
	l.Throttle("probe-worker", 0)
}

func TestLambdaUnknownFunctionIsPermanent(t *testing.T) {
	l := startProbeLambda(t, 1)
	a := adapter.New(adapter.NewLambda(lambdaClient(l.URL), "no-such-function", "probe-stitcher"))
	_, err := a.Execute(t.Context(), job.WorkerJob{JobID: "t", Chunk: job.Chunk{Count: 1}, Attempt: 1, Command: "echo", OutputFile: "a.mp4"})
	var e *joberr.Error
	if !errors.As(err, &e) || e.Kind != joberr.Permanent {
		t.Fatalf("Execute on a missing function: %v, want a permanent error", err)
	}
}

// clientFromEnv builds the client the functions build, from the environment
// (AWS_ENDPOINT_URL_LAMBDA and static credentials), with the retrying SDK
// configuration of NewLambdaClient.
func clientFromEnv(t *testing.T, endpoint string) (*lambda.Client, error) {
	t.Helper()
	for k, v := range awslocal.CredentialsEnv() {
		t.Setenv(k, v)
	}
	t.Setenv("AWS_ENDPOINT_URL_LAMBDA", endpoint)
	return adapter.NewLambdaClient(t.Context(), func(o *retry.StandardOptions) {
		o.Backoff = retry.NewExponentialJitterBackoff(50 * time.Millisecond)
	})
}
