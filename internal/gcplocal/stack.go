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
	"github.com/helios-project/infrastructure/pkg/job"
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
func StartStack(ctx context.Context, opts StackOptions) (st *Stack, err error) {
	workers := max(opts.Workers, 3)
	if opts.Allowed == "" {
		opts.Allowed = "ffmpeg"
	}
	if opts.PushDeadline <= 0 {
		opts.PushDeadline = 600 * time.Second
	}
	bins := map[string]string{}
	for _, fn := range []string{"orchestrator", "worker", "stitcher"} {
		if bins[fn], err = localnet.Build(ctx, "./functions/"+fn, filepath.Join(opts.WorkDir, "bin"), fn); err != nil {
			return nil, err
		}
	}
	st = &Stack{Token: rand.Text()}
	defer func() {
		if err != nil {
			st.Close()
		}
	}()
	if st.GCS, err = StartGCS(BucketName); err != nil {
		return st, err
	}
	if st.PubSub, err = StartPubSub(ctx, Project); err != nil {
		return st, err
	}
	emulators := map[string]string{}
	for k, v := range st.GCS.Env() {
		emulators[k] = v
	}
	for k, v := range st.PubSub.Env() {
		emulators[k] = v
	}
	for k, v := range emulators {
		os.Setenv(k, v)
	}
	st.URL = st.GCS.BucketURL(BucketName)
	for _, topic := range []string{JobsTopic, ShortTopic} {
		if err = st.PubSub.CreateTopic(ctx, topic); err != nil {
			return st, fmt.Errorf("create topic %s: %w", topic, err)
		}
	}
	// The notification deploy.sh creates: uploads under jobs/ only.
	if _, err = st.GCS.Client().Bucket(BucketName).AddNotification(ctx, &storage.Notification{
		TopicProjectID: Project, TopicID: JobsTopic, ObjectNamePrefix: job.JobsPrefix,
		EventTypes: []string{storage.ObjectFinalizeEvent}, PayloadFormat: storage.JSONPayload,
	}); err != nil {
		return st, fmt.Errorf("add the upload notification: %w", err)
	}
	env := func(extra map[string]string) map[string]string {
		e := map[string]string{
			config.EnvStorageURL:      st.URL,
			config.EnvAllowedCommands: opts.Allowed,
			config.EnvLogLevel:        "info",
			config.EnvHTTPToken:       st.Token,
		}
		for k, v := range emulators {
			e[k] = v
		}
		for k, v := range extra {
			e[k] = v
		}
		return e
	}
	start := func(name, bin string, instances, concurrency int, timeout time.Duration, extra map[string]string) (*Service, error) {
		return StartService(ctx, ServiceOptions{Name: name, Binary: bin, Env: env(extra),
			Instances: instances, Concurrency: concurrency, Timeout: timeout, LogDir: opts.WorkDir})
	}
	if st.Worker, err = start(WorkerService, bins["worker"], workers, 1, time.Hour, nil); err != nil {
		return st, err
	}
	if st.Stitcher, err = start(StitcherService, bins["stitcher"], 1, 1, time.Hour, nil); err != nil {
		return st, err
	}
	orchestratorEnv := func(topic string, timeout time.Duration) map[string]string {
		return map[string]string{
			config.EnvAdapter:        config.AdapterCloudRun,
			config.EnvWorkerURL:      st.Worker.URL,
			config.EnvStitcherURL:    st.Stitcher.URL,
			config.EnvConcurrency:    strconv.Itoa(workers),
			config.EnvStatusInterval: "200ms",
			config.EnvLeaseTTL:       LeaseTTL.String(),
			config.EnvContinueTopic:  st.PubSub.TopicName(topic),
			config.EnvRequestTimeout: timeout.String(),
		}
	}
	if st.Orchestrator, err = start(OrchestratorService, bins["orchestrator"], 2, 20, time.Hour, orchestratorEnv(JobsTopic, time.Hour)); err != nil {
		return st, err
	}
	if err = st.PubSub.Push(ctx, JobsTopic, JobsSubscription, st.Orchestrator.URL+"/", st.Token, opts.PushDeadline); err != nil {
		return st, err
	}
	if opts.ShortRequestTimeout > 0 {
		if st.Short, err = start(ShortOrchestratorService, bins["orchestrator"], 2, 20, opts.ShortRequestTimeout,
			orchestratorEnv(ShortTopic, opts.ShortRequestTimeout)); err != nil {
			return st, err
		}
		if err = st.PubSub.Push(ctx, ShortTopic, ShortSubscription, st.Short.URL+"/", st.Token, opts.PushDeadline); err != nil {
			return st, err
		}
	}
	if st.Bucket, err = storagex.Open(ctx, st.URL); err != nil {
		return st, err
	}
	return st, nil
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
