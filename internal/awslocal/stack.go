package awslocal

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"gocloud.dev/blob"
	"gocloud.dev/blob/s3blob"

	"github.com/helios-project/infrastructure/internal/localnet"
	"github.com/helios-project/infrastructure/pkg/config"
	"github.com/helios-project/infrastructure/pkg/job"
)

// Function names of the emulated stack, as SAM and CDK name them.
const (
	OrchestratorFunction = "helios-orchestrator"
	WorkerFunction       = "helios-worker"
	StitcherFunction     = "helios-stitcher"
	BucketName           = "helios-renders"
)

// StackOptions size the emulated stack.
type StackOptions struct {
	Workers       int    // worker execution environments (default 3)
	Orchestrators int    // orchestrator execution environments (default 2)
	WorkDir       string // bootstraps and emulator logs
	Allowed       string // HELIOS_ALLOWED_COMMANDS (default ffmpeg)
	// ShortOrchestratorTimeout, if set, adds ShortOrchestratorFunction: the
	// orchestrator with this time limit, to try jobs longer than one
	// invocation.
	ShortOrchestratorTimeout time.Duration
	// BrowserWorkers, if set, adds BrowserWorkerFunction with that many
	// environments: the worker with the Helios renderer, found in
	// RendererDir (prepended to PATH) and allowed there only.
	BrowserWorkers int
	RendererDir    string
}

// BrowserWorkerFunction is the worker that renders Helios compositions.
const BrowserWorkerFunction = "helios-browser-worker"

// LeaseTTL is the orchestrators' HELIOS_LEASE_TTL: shorter than the
// default, so a test whose orchestrator dies waits less for its job.
const LeaseTTL = 15 * time.Second

// ShortOrchestratorFunction is the orchestrator with a short time limit.
const ShortOrchestratorFunction = "helios-orchestrator-short"

// Stack is the three functions, built from this module, under the Lambda
// emulator with an S3-compatible bucket: the AWS deployment on loopback.
type Stack struct {
	S3     *S3
	Lambda *Lambda
	Bucket *blob.Bucket // the stack's bucket through the real S3 client
	Client *lambda.Client
	URL    string // HELIOS_STORAGE_URL of the bucket
}

// StartStack builds the bootstraps and starts everything. If a step fails,
// what has started is stopped before it returns the error.
func StartStack(ctx context.Context, opts StackOptions) (*Stack, error) {
	rie, err := FindRIE()
	if err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	boots, err := buildBootstraps(ctx, opts.WorkDir)
	if err != nil {
		return nil, err
	}
	s3srv, err := StartS3(BucketName)
	if err != nil {
		return nil, err
	}
	st := &Stack{S3: s3srv, URL: s3srv.BucketURL(BucketName)}
	st.Lambda, err = StartLambda(ctx, rie, opts.WorkDir, st.functions(opts, boots)...)
	if err != nil {
		s3srv.Close()
		return nil, err
	}
	if err := st.openClients(ctx); err != nil {
		st.Close()
		return nil, err
	}
	return st, nil
}

// withDefaults fills in the sizes opts leaves out: at least 3 workers and
// 2 orchestrators, ffmpeg allowed.
func (opts StackOptions) withDefaults() StackOptions {
	opts.Workers = max(opts.Workers, 3)
	opts.Orchestrators = max(opts.Orchestrators, 2)
	if opts.Allowed == "" {
		opts.Allowed = "ffmpeg"
	}
	return opts
}

// buildBootstraps builds the three functions' bootstraps, each into
// <workDir>/<function>, before anything starts: function name → bootstrap.
func buildBootstraps(ctx context.Context, workDir string) (map[string]string, error) {
	root, err := localnet.ModuleRoot()
	if err != nil {
		return nil, err
	}
	boots := map[string]string{}
	for fn, pkg := range map[string]string{
		OrchestratorFunction: "./functions/orchestrator",
		WorkerFunction:       "./functions/worker",
		StitcherFunction:     "./functions/stitcher",
	} {
		boot, err := BuildBootstrap(ctx, filepath.Join(root, pkg), filepath.Join(workDir, fn))
		if err != nil {
			return nil, err
		}
		boots[fn] = boot
	}
	return boots, nil
}

// functions is what runs under the Lambda emulator: the three functions,
// then the browser worker and the short orchestrator if opts asks for
// them, on the bootstraps built.
func (s *Stack) functions(opts StackOptions, boots map[string]string) []Function {
	orchestratorEnv := s.orchestratorEnv(opts)
	fns := []Function{
		{Name: OrchestratorFunction, Bootstrap: boots[OrchestratorFunction], Instances: opts.Orchestrators, Env: orchestratorEnv},
		{Name: WorkerFunction, Bootstrap: boots[WorkerFunction], Instances: opts.Workers, Env: s.functionEnv(opts, nil)},
		{Name: StitcherFunction, Bootstrap: boots[StitcherFunction], Env: s.functionEnv(opts, nil)},
	}
	if opts.BrowserWorkers > 0 {
		fns = append(fns, Function{Name: BrowserWorkerFunction, Bootstrap: boots[WorkerFunction], Instances: opts.BrowserWorkers,
			Env: s.functionEnv(opts, map[string]string{
				config.EnvAllowedCommands: opts.Allowed + "," + job.RendererProgram,
				"PATH":                    opts.RendererDir + string(os.PathListSeparator) + os.Getenv("PATH"),
			})})
	}
	if opts.ShortOrchestratorTimeout > 0 {
		fns = append(fns, Function{Name: ShortOrchestratorFunction, Bootstrap: boots[OrchestratorFunction], Instances: 2,
			Env: orchestratorEnv, Timeout: opts.ShortOrchestratorTimeout})
	}
	return fns
}

// functionEnv is a function's environment: the S3 credentials, the bucket
// and the allowed commands, then extra.
func (s *Stack) functionEnv(opts StackOptions, extra map[string]string) map[string]string {
	e := CredentialsEnv()
	e[config.EnvStorageURL] = s.URL
	e[config.EnvAllowedCommands] = opts.Allowed
	e[config.EnvLogLevel] = "info"
	for k, v := range extra {
		e[k] = v
	}
	return e
}

// orchestratorEnv is the orchestrators' environment (one map, the short
// orchestrator's too): the Lambda adapter and the functions it invokes.
func (s *Stack) orchestratorEnv(opts StackOptions) map[string]string {
	env := s.functionEnv(opts, map[string]string{
		config.EnvAdapter:          config.AdapterLambda,
		config.EnvWorkerFunction:   WorkerFunction,
		config.EnvStitcherFunction: StitcherFunction,
		config.EnvConcurrency:      strconv.Itoa(opts.Workers),
		config.EnvStatusInterval:   "200ms",
		config.EnvLeaseTTL:         LeaseTTL.String(),
	})
	if opts.BrowserWorkers > 0 {
		// The orchestrator accepts what either worker may run.
		env[config.EnvBrowserWorkerFunction] = BrowserWorkerFunction
		env[config.EnvAllowedCommands] = opts.Allowed + "," + job.RendererProgram
	}
	return env
}

// openClients opens the bucket through the real S3 client and the Lambda
// client, both on the emulators' endpoints with the static credentials.
func (s *Stack) openClients(ctx context.Context) (err error) {
	cfg := aws.Config{
		Region:      Region,
		Credentials: credentials.NewStaticCredentialsProvider(AccessKeyID, SecretAccessKey, ""),
	}
	s.Bucket, err = s3blob.OpenBucket(ctx, s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(s.S3.Endpoint)
		o.UsePathStyle = true
	}), BucketName, nil)
	if err != nil {
		return fmt.Errorf("open the stack's bucket: %w", err)
	}
	cfg.BaseEndpoint = aws.String(s.Lambda.URL)
	s.Client = lambda.NewFromConfig(cfg)
	return nil
}

// Close stops everything.
func (s *Stack) Close() {
	if s.Bucket != nil {
		s.Bucket.Close()
	}
	if s.Lambda != nil {
		s.Lambda.Close()
	}
	s.S3.Close()
}
