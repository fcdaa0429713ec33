package gcplocal

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"cloud.google.com/go/storage"
	"gocloud.dev/blob"

	"github.com/helios-project/infrastructure/internal/localnet"
	"github.com/helios-project/infrastructure/pkg/config"
	"github.com/helios-project/infrastructure/pkg/layout"
	storagex "github.com/helios-project/infrastructure/pkg/storage"
)

// Names of the emulated deployment, as infra/cloudrun names them.
const (
	Project             = "helios-local"
	BucketName          = "helios-renders"
	OrchestratorService = "helios-orchestrator"
	WorkerService       = "helios-worker"
	StitcherService     = "helios-stitcher"
	JobsTopic           = "helios-jobs"
	JobsSubscription    = "helios-jobs-push"
)

// ShortOrchestratorService is the orchestrator with a short request limit,
// with its own topic and push subscription, to try jobs longer than one
// request.
const (
	ShortOrchestratorService = "helios-orchestrator-short"
	ShortTopic               = "helios-jobs-short"
	ShortSubscription        = "helios-jobs-short-push"
)

// StackOptions size the emulated deployment.
type StackOptions struct {
	Workers int    // worker instances (concurrency 1 each; default 3)
	WorkDir string // binaries and logs
	Allowed string // HELIOS_ALLOWED_COMMANDS (default ffmpeg)
	// PushDeadline is the push subscription's ack deadline: how long the
	// relay waits for the orchestrator's answer before delivering the
	// message again (default 600s, Pub/Sub's longest).
	PushDeadline time.Duration
	// ShortRequestTimeout, if set, adds ShortOrchestratorService with this
	// HELIOS_REQUEST_TIMEOUT (and request timeout at the front).
	ShortRequestTimeout time.Duration
}

// LeaseTTL is the orchestrators' HELIOS_LEASE_TTL: shorter than the
// default, so a test whose orchestrator dies waits less for its job.
const LeaseTTL = 15 * time.Second

// Stack is the Cloud Run deployment on loopback: the three function binaries
// as services, the bucket on a GCS server whose notification for uploads
// under jobs/ goes to a Pub/Sub topic pushed to the orchestrator.
type Stack struct {
	GCS          *GCS
	PubSub       *PubSub
	Orchestrator *Service
	Short        *Service // nil unless ShortRequestTimeout
	Worker       *Service
	Stitcher     *Service
	Bucket       *blob.Bucket // the bucket through gcsblob
	URL          string       // HELIOS_STORAGE_URL
	// Token is the HELIOS_HTTP_TOKEN of every service: requests to them
	// carry it as a bearer token (IAM's part on Cloud Run).
	Token string
}

// StartStack builds the binaries and starts everything. It sets
// STORAGE_EMULATOR_HOST and PUBSUB_EMULATOR_HOST in this process's
// environment: the GCS server publishes notifications through a Pub/Sub
// client, and the caller's clients must reach the emulators too.
//
// On an error everything already started is stopped: each step sets its
// part of st as soon as it runs, and the deferred Close stops what is set.
func StartStack(ctx context.Context, opts StackOptions) (st *Stack, err error) {
	opts = opts.withDefaults()
	bins, err := buildFunctions(ctx, opts.WorkDir)
	if err != nil {
		return nil, err
	}
	st = &Stack{Token: rand.Text()}
	defer func() {
		if err != nil {
			st.Close()
		}
	}()
	s := &stackStart{st: st, opts: opts, bins: bins}
	if err = s.startEmulators(ctx); err != nil {
		return st, err
	}
	if err = s.notifyUploads(ctx); err != nil {
		return st, err
	}
	if err = s.startServices(ctx); err != nil {
		return st, err
	}
	if st.Bucket, err = storagex.Open(ctx, st.URL); err != nil {
		return st, err
	}
	return st, nil
}

// withDefaults fills in the sizes opts leaves out: at least 3 workers,
// ffmpeg allowed, Pub/Sub's longest ack deadline.
func (opts StackOptions) withDefaults() StackOptions {
	opts.Workers = max(opts.Workers, 3)
	if opts.Allowed == "" {
		opts.Allowed = "ffmpeg"
	}
	if opts.PushDeadline <= 0 {
		opts.PushDeadline = 600 * time.Second
	}
	return opts
}

// buildFunctions builds the three function binaries into <workDir>/bin,
// first of all: nothing is running yet if one does not build.
func buildFunctions(ctx context.Context, workDir string) (map[string]string, error) {
	bins := map[string]string{}
	for _, fn := range []string{"orchestrator", "worker", "stitcher"} {
		bin, err := localnet.Build(ctx, "./functions/"+fn, filepath.Join(workDir, "bin"), fn)
		if err != nil {
			return nil, err
		}
		bins[fn] = bin
	}
	return bins, nil
}

// stackStart is one StartStack under way: the stack as far as it has
// started, and what the later steps take from the earlier ones.
type stackStart struct {
	st        *Stack
	opts      StackOptions      // with defaults
	bins      map[string]string // function name → binary
	emulators map[string]string // the emulators' environment, given to every service too
}

// startEmulators starts GCS and Pub/Sub and points this process at them:
// the GCS server's notifications go through a Pub/Sub client reading
// PUBSUB_EMULATOR_HOST.
func (s *stackStart) startEmulators(ctx context.Context) (err error) {
	if s.st.GCS, err = StartGCS(BucketName); err != nil {
		return err
	}
	if s.st.PubSub, err = StartPubSub(ctx, Project); err != nil {
		return err
	}
	s.emulators = map[string]string{}
	for k, v := range s.st.GCS.Env() {
		s.emulators[k] = v
	}
	for k, v := range s.st.PubSub.Env() {
		s.emulators[k] = v
	}
	for k, v := range s.emulators {
		os.Setenv(k, v)
	}
	s.st.URL = s.st.GCS.BucketURL(BucketName)
	return nil
}

// notifyUploads creates the topics and the notification deploy.sh
// creates: uploads under jobs/ only, published to JobsTopic.
func (s *stackStart) notifyUploads(ctx context.Context) error {
	for _, topic := range []string{JobsTopic, ShortTopic} {
		if err := s.st.PubSub.CreateTopic(ctx, topic); err != nil {
			return fmt.Errorf("create topic %s: %w", topic, err)
		}
	}
	if _, err := s.st.GCS.Client().Bucket(BucketName).AddNotification(ctx, &storage.Notification{
		TopicProjectID: Project, TopicID: JobsTopic, ObjectNamePrefix: layout.JobsPrefix,
		EventTypes: []string{storage.ObjectFinalizeEvent}, PayloadFormat: storage.JSONPayload,
	}); err != nil {
		return fmt.Errorf("add the upload notification: %w", err)
	}
	return nil
}

// startServices starts the worker and the stitcher first, since the
// orchestrators' environment names their URLs, then the orchestrator (and
// the short one if asked for), each with its topic pushed to it.
func (s *stackStart) startServices(ctx context.Context) (err error) {
	st, opts := s.st, s.opts
	if st.Worker, err = s.startService(ctx, WorkerService, s.bins["worker"], opts.Workers, 1, time.Hour, nil); err != nil {
		return err
	}
	if st.Stitcher, err = s.startService(ctx, StitcherService, s.bins["stitcher"], 1, 1, time.Hour, nil); err != nil {
		return err
	}
	if st.Orchestrator, err = s.startOrchestrator(ctx, OrchestratorService, JobsTopic, JobsSubscription, time.Hour); err != nil {
		return err
	}
	if opts.ShortRequestTimeout > 0 {
		if st.Short, err = s.startOrchestrator(ctx, ShortOrchestratorService, ShortTopic, ShortSubscription, opts.ShortRequestTimeout); err != nil {
			return err
		}
	}
	return nil
}

// startOrchestrator starts an orchestrator service with this request
// timeout (at the front and as HELIOS_REQUEST_TIMEOUT), continuing on
// topic, and pushes topic to it through subscription. If the push fails it
// returns the started service with the error, for Close to stop it.
func (s *stackStart) startOrchestrator(ctx context.Context, name, topic, subscription string, timeout time.Duration) (*Service, error) {
	svc, err := s.startService(ctx, name, s.bins["orchestrator"], 2, 20, timeout, s.orchestratorEnv(topic, timeout))
	if err != nil {
		return svc, err
	}
	return svc, s.st.PubSub.Push(ctx, topic, subscription, svc.URL+"/", s.st.Token, s.opts.PushDeadline)
}

// startService starts one service, logging to the work directory, with
// the environment every service has plus extra.
func (s *stackStart) startService(ctx context.Context, name, bin string, instances, concurrency int, timeout time.Duration, extra map[string]string) (*Service, error) {
	return StartService(ctx, ServiceOptions{Name: name, Binary: bin, Env: s.serviceEnv(extra),
		Instances: instances, Concurrency: concurrency, Timeout: timeout, LogDir: s.opts.WorkDir})
}

// serviceEnv is a service's environment: the bucket, the allowed commands,
// the token its requests must carry and the emulators, then extra.
func (s *stackStart) serviceEnv(extra map[string]string) map[string]string {
	e := map[string]string{
		config.EnvStorageURL:      s.st.URL,
		config.EnvAllowedCommands: s.opts.Allowed,
		config.EnvLogLevel:        "info",
		config.EnvHTTPToken:       s.st.Token,
	}
	for k, v := range s.emulators {
		e[k] = v
	}
	for k, v := range extra {
		e[k] = v
	}
	return e
}

// orchestratorEnv is what an orchestrator adds: the Cloud Run adapter, the
// worker's and stitcher's URLs (so they must have started), the topic it
// continues a long job on and its request timeout.
func (s *stackStart) orchestratorEnv(topic string, timeout time.Duration) map[string]string {
	return map[string]string{
		config.EnvAdapter:        config.AdapterCloudRun,
		config.EnvWorkerURL:      s.st.Worker.URL,
		config.EnvStitcherURL:    s.st.Stitcher.URL,
		config.EnvConcurrency:    strconv.Itoa(s.opts.Workers),
		config.EnvStatusInterval: "200ms",
		config.EnvLeaseTTL:       LeaseTTL.String(),
		config.EnvContinueTopic:  s.st.PubSub.TopicName(topic),
		config.EnvRequestTimeout: timeout.String(),
	}
}

// Close stops everything.
func (s *Stack) Close() {
	if s.Bucket != nil {
		s.Bucket.Close()
	}
	for _, svc := range []*Service{s.Orchestrator, s.Short, s.Worker, s.Stitcher} {
		if svc != nil {
			svc.Close()
		}
	}
	if s.PubSub != nil {
		s.PubSub.Close()
	}
	if s.GCS != nil {
		s.GCS.Close()
	}
}
