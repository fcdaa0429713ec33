package adapter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/smithy-go"

	"github.com/helios-project/infrastructure/pkg/joberr"
)

// NewLambdaClient loads the AWS configuration the usual way (environment,
// shared config, the function's role) with a retryer that backs off on
// throttling, 5xx answers and dropped connections. AWS_ENDPOINT_URL_LAMBDA
// points it at another endpoint (the emulator, in tests). retryOpts adjust
// the retryer (6 attempts, backoff up to 20 s).
func NewLambdaClient(ctx context.Context, retryOpts ...func(*retry.StandardOptions)) (*lambda.Client, error) {
	httpClient := awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
		t.MaxIdleConnsPerHost = 256 // one connection per chunk in flight
	})
	cfg, err := config.LoadDefaultConfig(ctx,
		config.WithHTTPClient(httpClient),
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = 6
				o.MaxBackoff = 20 * time.Second
				for _, f := range retryOpts {
					f(o)
				}
			})
		}))
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w", err)
	}
	return lambda.NewFromConfig(cfg), nil
}

// LambdaInvoker is the part of the Lambda client the adapter uses.
type LambdaInvoker interface {
	Invoke(ctx context.Context, in *lambda.InvokeInput, opts ...func(*lambda.Options)) (*lambda.InvokeOutput, error)
}

// Lambda invokes the functions on AWS Lambda, synchronously
// (RequestResponse). Throttling, 5xx answers and dropped connections are
// retried with backoff by the SDK's retryer (see NewLambdaClient); what is
// still failing after that comes back as a retryable *joberr.Error, so the
// orchestrator's own retries take over.
type Lambda struct {
	client    LambdaInvoker
	functions map[Function]string
}

// NewLambda makes a Lambda driver; worker and stitcher are function names
// or ARNs (HELIOS_WORKER_FUNCTION, HELIOS_STITCHER_FUNCTION).
func NewLambda(client LambdaInvoker, worker, stitcher string) *Lambda {
	return &Lambda{client: client, functions: map[Function]string{Worker: worker, Stitcher: stitcher}}
}

// WithBrowserWorker names the function that renders Helios compositions
// (HELIOS_BROWSER_WORKER_FUNCTION); "" leaves those jobs to the worker.
func (a *Lambda) WithBrowserWorker(name string) *Lambda {
	if name != "" {
		a.functions[BrowserWorker] = name
	}
	return a
}

// Has reports whether fn is configured.
func (a *Lambda) Has(fn Function) bool { return a.functions[fn] != "" }

// Invoke implements Driver.
func (a *Lambda) Invoke(ctx context.Context, fn Function, payload []byte) ([]byte, error) {
	name := a.functions[fn]
	if name == "" {
		return nil, joberr.Errorf(joberr.Permanent, joberr.CodeInvalid, "no Lambda function configured for %s", fn)
	}
	out, err := a.client.Invoke(ctx, &lambda.InvokeInput{
		FunctionName:   aws.String(name),
		InvocationType: types.InvocationTypeRequestResponse,
		Payload:        payload,
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, classifyLambdaError(name, err)
	}
	if out.FunctionError != nil {
		var doc struct {
			ErrorMessage string `json:"errorMessage"`
			ErrorType    string `json:"errorType"`
		}
		if err := json.Unmarshal(out.Payload, &doc); err != nil {
			return nil, joberr.Errorf(joberr.Retryable, joberr.CodeWorkerLost, "%s failed (%s) with an unreadable error: %.200s", name, *out.FunctionError, out.Payload)
		}
		return nil, joberr.DecodeFunctionError(doc.ErrorType, doc.ErrorMessage)
	}
	return out.Payload, nil
}

// InvokeAsync queues an asynchronous (Event) invocation of a function:
// Lambda accepts the payload and runs the function later.
func InvokeAsync(ctx context.Context, client LambdaInvoker, function string, payload []byte) error {
	_, err := client.Invoke(ctx, &lambda.InvokeInput{
		FunctionName:   aws.String(function),
		InvocationType: types.InvocationTypeEvent,
		Payload:        payload,
	})
	if err != nil {
		return classifyLambdaError(function, err)
	}
	return nil
}

// classifyLambdaError turns an Invoke API error (after the SDK's own
// retries) into a typed error.
func classifyLambdaError(name string, err error) error {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode() {
		case "TooManyRequestsException", "EC2ThrottledException", "ENILimitReachedException":
			// Refused before running: capacity, not the chunk.
			return joberr.Errorf(joberr.Retryable, joberr.CodeThrottled, "invoke %s: %s: %s", name, apiErr.ErrorCode(), apiErr.ErrorMessage())
		case "ResourceNotReadyException", "ResourceConflictException", "ServiceException",
			"SnapStartTimeoutException", "EFSMountTimeoutException":
			// The function may have run: an ordinary retryable failure.
			return joberr.Errorf(joberr.Retryable, joberr.CodeTransport, "invoke %s: %s: %s", name, apiErr.ErrorCode(), apiErr.ErrorMessage())
		case "RequestTooLargeException":
			return joberr.Errorf(joberr.Permanent, joberr.CodePayloadTooLarge, "invoke %s: %s", name, apiErr.ErrorMessage())
		}
	}
	var respErr *awshttp.ResponseError
	if errors.As(err, &respErr) {
		if respErr.HTTPStatusCode() >= http.StatusInternalServerError || respErr.HTTPStatusCode() == http.StatusTooManyRequests {
			return joberr.Errorf(joberr.Retryable, joberr.CodeTransport, "invoke %s: %v", name, err)
		}
		// 4xx: bad name, no permission, invalid request: repeating cannot help.
		return joberr.Errorf(joberr.Permanent, joberr.CodeInvalid, "invoke %s: %v", name, err)
	}
	return joberr.Errorf(joberr.Retryable, joberr.CodeTransport, "invoke %s: %v", name, fmt.Errorf("%w", err))
}
