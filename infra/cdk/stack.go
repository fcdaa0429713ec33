package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatchactions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsecrassets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambdadestinations"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsscheduler"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/helios-project/infrastructure/pkg/config"
	"github.com/helios-project/infrastructure/pkg/cost"
	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/layout"
	"github.com/helios-project/infrastructure/pkg/metrics"
	"github.com/helios-project/infrastructure/pkg/pagefetch"
	"github.com/helios-project/infrastructure/pkg/storage"
)

// Settings size and shape the stack. Every field can be set with CDK
// context (cdk.json or `cdk deploy -c name=value`); see settingsFromContext.
type Settings struct {
	StackName          string
	BucketPrefix       string // bucket: <prefix>-<account>-<region>
	RemovalPolicy      string // retain | destroy
	ChunkExpiryDays    int    // leftover segments expire after this many days
	OutputExpiryDays   int    // 0 keeps outputs/ forever
	OrchestratorMemory int    // MB
	WorkerMemory       int    // MB
	WorkerStorage      int    // MB of /tmp
	WorkerTimeout      int    // seconds
	WorkerConcurrency  int    // reserved concurrency, and chunks in flight
	StitcherMemory     int    // MB
	StitcherStorage    int    // MB of /tmp
	AllowedCommands    string // HELIOS_ALLOWED_COMMANDS
	LogRetentionDays   int
	AlarmTopicArn      string // optional SNS topic for the alarms
	// WebhookSecretArn is a Secrets Manager secret holding the key that
	// signs webhook deliveries; the orchestrator reads it at start.
	WebhookSecretArn string
	// WorkerSpendAlarm is the spend rate of the workers, in USD an hour
	// over every job of the account, above which an alarm fires.
	WorkerSpendAlarm int
	LambdaDir        string // where make package writes <fn>.zip
	LayerZip         string // what make layer writes

	// The browser worker: the worker as an x86_64 container image with
	// Node.js, the npm headless shell of Chromium and the Helios renderer
	// (infra/browser-worker/Dockerfile), which takes the chunks that run
	// `helios`; ffmpeg-only chunks stay on the arm64 worker. Deploying it
	// builds the image with Docker (cdk deploy does); false leaves it out.
	BrowserWorker            bool
	BrowserWorkerMemory      int    // MB; also buys CPU (1,769 MB is one vCPU)
	BrowserWorkerStorage     int    // MB of /tmp
	BrowserWorkerTimeout     int    // seconds
	BrowserWorkerConcurrency int    // reserved concurrency (default: workerConcurrency, as a job may send it every chunk)
	SourceDir                string // the repository root: the image's build context
	// RenderOrigins are the origins the workers fetch for rendered pages
	// (HELIOS_RENDER_ORIGINS, comma-separated): fonts from Google Fonts,
	// say. Empty: a page may load nothing from another origin.
	RenderOrigins string
}

// DefaultSettings are what `cdk synth` uses without context.
func DefaultSettings() Settings {
	return Settings{
		StackName:          "HeliosRenderStack",
		BucketPrefix:       "helios-renders",
		RemovalPolicy:      "retain",
		ChunkExpiryDays:    7,
		OrchestratorMemory: 512,
		WorkerMemory:       3008,
		WorkerStorage:      4096,
		WorkerTimeout:      900,
		WorkerConcurrency:  50,
		StitcherMemory:     3008,
		StitcherStorage:    10240,
		AllowedCommands:    "ffmpeg",
		LogRetentionDays:   30,
		WorkerSpendAlarm:   10,
		LambdaDir:          "../../build/lambda",
		LayerZip:           "../../layers/ffmpeg/build/ffmpeg-layer.zip",
		// A chunk render peaks at 0.7-0.8 GB (docs/PERFORMANCE.md), but
		// Chromium, Node and ffmpeg run at once: 3,008 MB buys ~1.7 vCPUs.
		// Frames are piped, not written: /tmp holds the chunk's assets,
		// Chromium's profile and the segment.
		BrowserWorker:            true,
		BrowserWorkerMemory:      3008,
		BrowserWorkerStorage:     2048,
		BrowserWorkerTimeout:     900,
		BrowserWorkerConcurrency: 50,
		SourceDir:                "../..",
	}
}

// BrowserWorkerDockerfile is the browser worker's Dockerfile, relative to
// SourceDir; what its .dockerignore lists stays out of the build context.
const BrowserWorkerDockerfile = "infra/browser-worker/Dockerfile"

// sizes is HELIOS_SIZES for the orchestrator: each function's memory and
// architecture as deployed.
func (s Settings) sizes() string {
	sizes := map[string]cost.Size{
		job.FunctionOrchestrator: {MemoryMB: s.OrchestratorMemory, Arch: cost.ARM64},
		job.FunctionWorker:       {MemoryMB: s.WorkerMemory, Arch: cost.ARM64},
		job.FunctionStitcher:     {MemoryMB: s.StitcherMemory, Arch: cost.ARM64},
	}
	if s.BrowserWorker {
		sizes[job.FunctionBrowserWorker] = cost.Size{MemoryMB: s.BrowserWorkerMemory, Arch: cost.X8664}
	}
	data, err := json.Marshal(sizes)
	if err != nil {
		panic(err) // a map of plain structs always marshals
	}
	return string(data)
}

// spendAlarm fires when the workers, across every job of the account,
// spend faster than s.WorkerSpendAlarm US dollars an hour: their billed
// duration (the Duration metric's sum, in ms) at their memory and
// architecture's price, and their invocations, over 5 minutes, times 12.
// A budget stops one runaway job; this catches many jobs, or a deployment
// whose budgets are off.
func spendAlarm(stack awscdk.Stack, s Settings, workers []awslambda.Function) {
	prices := cost.DefaultPrices()
	period := &awscloudwatch.MetricOptions{Period: awscdk.Duration_Minutes(jsii.Number(5)), Statistic: jsii.String("Sum")}
	usingMetrics := map[string]awscloudwatch.IMetric{}
	var terms []string
	for i, fn := range workers {
		memory, arch := s.WorkerMemory, cost.ARM64
		if i > 0 {
			memory, arch = s.BrowserWorkerMemory, cost.X8664
		}
		perMs := float64(memory) / 1024 * prices.LambdaGBSecond[arch] / 1000
		d, n := fmt.Sprintf("d%d", i), fmt.Sprintf("n%d", i)
		usingMetrics[d] = fn.MetricDuration(period)
		usingMetrics[n] = fn.MetricInvocations(period)
		terms = append(terms, fmt.Sprintf("%s*%s + %s*%s", d, decimal(perMs), n, decimal(prices.LambdaRequest)))
	}
	rate := awscloudwatch.NewMathExpression(&awscloudwatch.MathExpressionProps{
		Expression:   jsii.String("12*(" + strings.Join(terms, " + ") + ")"),
		UsingMetrics: &usingMetrics,
		Label:        jsii.String("Worker spend (USD an hour, list prices of " + prices.AsOf + ")"),
		Period:       awscdk.Duration_Minutes(jsii.Number(5)),
	})
	a := awscloudwatch.NewAlarm(stack, jsii.String("WorkerSpendAlarm"), &awscloudwatch.AlarmProps{
		AlarmDescription: jsii.String(fmt.Sprintf("Helios workers are spending over $%d an hour (all jobs of the account; "+
			"at list prices, before free tiers). Look for runaway jobs: helios job status, and their budgets.", s.WorkerSpendAlarm)),
		Metric:             rate,
		Threshold:          jsii.Number(float64(s.WorkerSpendAlarm)),
		EvaluationPeriods:  jsii.Number(1),
		ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_THRESHOLD,
		TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
	})
	if s.AlarmTopicArn != "" {
		a.AddAlarmAction(awscloudwatchactions.NewSnsAction(awssns.Topic_FromTopicArn(stack, jsii.String("WorkerSpendAlarmTopic"), jsii.String(s.AlarmTopicArn))))
	}
}

// decimal writes x as metric math reads numbers: digits and a point. Go's
// %g would write 3.9e-08, whose "e" CloudWatch (and the CDK's check) read
// as a metric ID.
func decimal(x float64) string { return strconv.FormatFloat(x, 'f', -1, 64) }

var bucketPrefixPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{1,30}$`)

// Validate reports every setting out of range, naming its context key.
func (s Settings) Validate() error {
	var problems []string
	check := func(ok bool, key string, value any, want string) {
		if !ok {
			problems = append(problems, fmt.Sprintf("%s=%v: expected %s", key, value, want))
		}
	}
	between := func(v, lo, hi int) bool { return v >= lo && v <= hi }
	check(regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]{0,50}$`).MatchString(s.StackName), "stackName", s.StackName, "a stack name of at most 51 letters, digits or '-' (it prefixes the orchestrator's function name)")
	check(bucketPrefixPattern.MatchString(s.BucketPrefix), "bucketPrefix", s.BucketPrefix, "2-31 lowercase letters, digits or '-'")
	check(s.RemovalPolicy == "retain" || s.RemovalPolicy == "destroy", "removalPolicy", s.RemovalPolicy, "retain or destroy")
	check(between(s.ChunkExpiryDays, 1, 3650), "chunkExpiryDays", s.ChunkExpiryDays, "1 to 3650")
	check(between(s.OutputExpiryDays, 0, 36500), "outputExpiryDays", s.OutputExpiryDays, "0 (keep) to 36500")
	for key, mb := range map[string]int{"orchestratorMemory": s.OrchestratorMemory, "workerMemory": s.WorkerMemory, "stitcherMemory": s.StitcherMemory, "browserWorkerMemory": s.BrowserWorkerMemory} {
		check(between(mb, 128, 10240), key, mb, "128 to 10240 MB")
	}
	for key, mb := range map[string]int{"workerStorage": s.WorkerStorage, "stitcherStorage": s.StitcherStorage, "browserWorkerStorage": s.BrowserWorkerStorage} {
		check(between(mb, 512, 10240), key, mb, "512 to 10240 MB of /tmp")
	}
	check(between(s.WorkerTimeout, 30, 900), "workerTimeout", s.WorkerTimeout, "30 to 900 seconds")
	check(between(s.WorkerConcurrency, 1, 10000), "workerConcurrency", s.WorkerConcurrency, "1 to 10000")
	check(between(s.BrowserWorkerTimeout, 30, 900), "browserWorkerTimeout", s.BrowserWorkerTimeout, "30 to 900 seconds")
	check(between(s.BrowserWorkerConcurrency, 1, 10000), "browserWorkerConcurrency", s.BrowserWorkerConcurrency, "1 to 10000")
	check(len(job.ParseAllowlist(s.AllowedCommands)) > 0, "allowedCommands", s.AllowedCommands, "a comma-separated list of programs")
	check(s.WebhookSecretArn == "" || strings.HasPrefix(s.WebhookSecretArn, "arn:") && strings.Contains(s.WebhookSecretArn, ":secretsmanager:") && strings.Contains(s.WebhookSecretArn, ":secret:"),
		"webhookSecretArn", s.WebhookSecretArn, "the full ARN of a Secrets Manager secret (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-xxxxxx)")
	check(s.WorkerSpendAlarm >= 1, "workerSpendAlarm", s.WorkerSpendAlarm, "at least 1 (US dollars an hour)")
	check(s.AlarmTopicArn == "" || strings.HasPrefix(s.AlarmTopicArn, "arn:"), "alarmTopicArn", s.AlarmTopicArn, "an SNS topic ARN")
	for _, o := range strings.Split(s.RenderOrigins, ",") {
		if _, err := pagefetch.Origin(o); strings.TrimSpace(o) != "" && err != nil {
			problems = append(problems, fmt.Sprintf("renderOrigins=%q: %v", s.RenderOrigins, err))
		}
	}
	if _, ok := retentions[s.LogRetentionDays]; !ok {
		problems = append(problems, fmt.Sprintf("logRetentionDays=%d: expected one of CloudWatch's retention periods (1, 3, 5, 7, 14, 30, 60, 90, 180, 365, ...)", s.LogRetentionDays))
	}
	if len(problems) > 0 {
		return fmt.Errorf("invalid settings: %s", strings.Join(problems, "; "))
	}
	return nil
}

var retentions = map[int]awslogs.RetentionDays{
	1: awslogs.RetentionDays_ONE_DAY, 3: awslogs.RetentionDays_THREE_DAYS, 5: awslogs.RetentionDays_FIVE_DAYS,
	7: awslogs.RetentionDays_ONE_WEEK, 14: awslogs.RetentionDays_TWO_WEEKS, 30: awslogs.RetentionDays_ONE_MONTH,
	60: awslogs.RetentionDays_TWO_MONTHS, 90: awslogs.RetentionDays_THREE_MONTHS, 180: awslogs.RetentionDays_SIX_MONTHS,
	365: awslogs.RetentionDays_ONE_YEAR, 731: awslogs.RetentionDays_TWO_YEARS, 1827: awslogs.RetentionDays_FIVE_YEARS,
	3653: awslogs.RetentionDays_TEN_YEARS,
}

// settingsFromContext overrides the defaults with CDK context values.
func settingsFromContext(scope constructs.Construct) (Settings, error) {
	s := DefaultSettings()
	var problems []string
	str := func(key string, dst *string) {
		if v := scope.Node().TryGetContext(jsii.String(key)); v != nil {
			*dst = fmt.Sprint(v)
		}
	}
	num := func(key string, dst *int) {
		v := scope.Node().TryGetContext(jsii.String(key))
		if v == nil {
			return
		}
		switch x := v.(type) {
		case float64:
			*dst = int(x)
		default:
			n, err := strconv.Atoi(fmt.Sprint(x))
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s=%v: expected a whole number", key, v))
				return
			}
			*dst = n
		}
	}
	str("stackName", &s.StackName)
	str("bucketPrefix", &s.BucketPrefix)
	str("removalPolicy", &s.RemovalPolicy)
	num("chunkExpiryDays", &s.ChunkExpiryDays)
	num("outputExpiryDays", &s.OutputExpiryDays)
	num("orchestratorMemory", &s.OrchestratorMemory)
	num("workerMemory", &s.WorkerMemory)
	num("workerStorage", &s.WorkerStorage)
	num("workerTimeout", &s.WorkerTimeout)
	num("workerConcurrency", &s.WorkerConcurrency)
	num("stitcherMemory", &s.StitcherMemory)
	num("stitcherStorage", &s.StitcherStorage)
	str("allowedCommands", &s.AllowedCommands)
	num("logRetentionDays", &s.LogRetentionDays)
	str("alarmTopicArn", &s.AlarmTopicArn)
	num("workerSpendAlarm", &s.WorkerSpendAlarm)
	str("webhookSecretArn", &s.WebhookSecretArn)
	str("lambdaDir", &s.LambdaDir)
	str("layerZip", &s.LayerZip)
	if v := scope.Node().TryGetContext(jsii.String("browserWorker")); v != nil {
		switch fmt.Sprint(v) {
		case "true":
			s.BrowserWorker = true
		case "false":
			s.BrowserWorker = false
		default:
			problems = append(problems, fmt.Sprintf("browserWorker=%v: expected true or false", v))
		}
	}
	num("browserWorkerMemory", &s.BrowserWorkerMemory)
	num("browserWorkerStorage", &s.BrowserWorkerStorage)
	num("browserWorkerTimeout", &s.BrowserWorkerTimeout)
	// The orchestrator keeps workerConcurrency chunks in flight, all of
	// them on the browser worker for a Helios job: fewer would throttle.
	s.BrowserWorkerConcurrency = s.WorkerConcurrency
	num("browserWorkerConcurrency", &s.BrowserWorkerConcurrency)
	str("sourceDir", &s.SourceDir)
	str("renderOrigins", &s.RenderOrigins)
	if len(problems) > 0 {
		return s, fmt.Errorf("invalid context: %s", strings.Join(problems, "; "))
	}
	return s, s.Validate()
}

// merge returns the variables of a, then b.
func merge(a, b map[string]*string) map[string]*string {
	out := map[string]*string{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

// ignorePatterns are the patterns of a .dockerignore file.
func ignorePatterns(text string) []string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			out = append(out, line)
		}
	}
	return out
}

// SweepInput is what the scheduled sweep sends the orchestrator: it
// resumes jobs left behind (pkg/trigger).
const SweepInput = `{"sweep": {}}`

// NewHeliosRenderStack defines the bucket, the ffmpeg layer, the three
// functions, the S3 trigger, the Function URL, least-privilege IAM, log
// groups, the scheduled sweep, the orchestrator's on-failure queue and
// alarms. It makes no account lookups: it synthesizes offline.
func NewHeliosRenderStack(scope constructs.Construct, s Settings) awscdk.Stack {
	stack := awscdk.NewStack(scope, jsii.String(s.StackName), &awscdk.StackProps{
		Description: jsii.String("Helios distributed rendering: orchestrator, chunk workers and stitcher on AWS Lambda"),
	})
	removal := awscdk.RemovalPolicy_RETAIN
	if s.RemovalPolicy == "destroy" {
		removal = awscdk.RemovalPolicy_DESTROY
	}

	// The bucket's name is built from pseudo parameters, not referenced, so
	// the functions' policies and environment do not depend on the bucket
	// resource, and the bucket can depend on the orchestrator (its event
	// notification) without a cycle.
	bucketName := awscdk.Fn_Join(jsii.String("-"), &[]*string{jsii.String(s.BucketPrefix), awscdk.Aws_ACCOUNT_ID(), awscdk.Aws_REGION()})
	bucketArn := awscdk.Fn_Join(jsii.String(""), &[]*string{jsii.String("arn:"), awscdk.Aws_PARTITION(), jsii.String(":s3:::"), bucketName})
	objects := func(pattern string) *string {
		return awscdk.Fn_Join(jsii.String(""), &[]*string{bucketArn, jsii.String("/" + pattern)})
	}

	rules := []*awss3.LifecycleRule{
		{
			Id:         jsii.String("expire-leftover-segments"),
			Expiration: awscdk.Duration_Days(jsii.Number(float64(s.ChunkExpiryDays))),
			TagFilters: &map[string]any{storage.SegmentTag.Key: storage.SegmentTag.Value},
		},
		{
			Id:                                  jsii.String("abort-incomplete-uploads"),
			AbortIncompleteMultipartUploadAfter: awscdk.Duration_Days(jsii.Number(1)),
		},
	}
	if s.OutputExpiryDays > 0 {
		rules = append(rules, &awss3.LifecycleRule{
			Id:         jsii.String("expire-outputs"),
			Prefix:     jsii.String(layout.OutputsPrefix),
			Expiration: awscdk.Duration_Days(jsii.Number(float64(s.OutputExpiryDays))),
		})
	}
	bucket := awss3.NewBucket(stack, jsii.String("RenderBucket"), &awss3.BucketProps{
		BucketName:        bucketName,
		BlockPublicAccess: awss3.BlockPublicAccess_BLOCK_ALL(),
		EnforceSSL:        jsii.Bool(true),
		Encryption:        awss3.BucketEncryption_S3_MANAGED,
		LifecycleRules:    &rules,
		RemovalPolicy:     removal,
	})

	layer := awslambda.NewLayerVersion(stack, jsii.String("FfmpegLayer"), &awslambda.LayerVersionProps{
		Description:             jsii.String("ffmpeg and ffprobe in /opt/bin"),
		Code:                    awslambda.Code_FromAsset(jsii.String(s.LayerZip), nil),
		CompatibleRuntimes:      &[]awslambda.Runtime{awslambda.Runtime_PROVIDED_AL2023()},
		CompatibleArchitectures: &[]awslambda.Architecture{awslambda.Architecture_ARM_64()},
		RemovalPolicy:           removal,
	})

	storageURL := awscdk.Fn_Join(jsii.String(""), &[]*string{jsii.String("s3://"), bucketName})
	common := map[string]*string{
		config.EnvStorageURL:      storageURL,
		config.EnvAllowedCommands: jsii.String(s.AllowedCommands),
		config.EnvLogLevel:        jsii.String("info"),
	}
	// fn describes one function: a zip that make package builds (arm64, with
	// the ffmpeg layer), or a container image.
	type fn struct {
		id, name     string
		functionName *string
		image        awslambda.DockerImageCode // nil: build/lambda/<name>.zip
		ffmpegLayer  bool                      // with the ffmpeg layer (zips)
		memory       int
		storage      int
		timeout      int
		env          map[string]*string
		reserved     *float64
	}
	function := func(f fn) awslambda.Function {
		vars := map[string]*string{}
		for k, v := range common {
			vars[k] = v
		}
		for k, v := range f.env {
			vars[k] = v
		}
		logs := awslogs.NewLogGroup(stack, jsii.String(f.id+"Logs"), &awslogs.LogGroupProps{
			Retention:     retentions[s.LogRetentionDays],
			RemovalPolicy: removal,
		})
		opts := awslambda.FunctionOptions{
			FunctionName:                 f.functionName,
			Description:                  jsii.String("Helios " + f.name),
			MemorySize:                   jsii.Number(float64(f.memory)),
			EphemeralStorageSize:         awscdk.Size_Mebibytes(jsii.Number(float64(f.storage))),
			Timeout:                      awscdk.Duration_Seconds(jsii.Number(float64(f.timeout))),
			Environment:                  &vars,
			LogGroup:                     logs,
			LoggingFormat:                awslambda.LoggingFormat_JSON,
			ReservedConcurrentExecutions: f.reserved,
		}
		if f.image != nil {
			return awslambda.NewDockerImageFunction(stack, jsii.String(f.id), &awslambda.DockerImageFunctionProps{
				FunctionName: opts.FunctionName, Description: opts.Description, MemorySize: opts.MemorySize,
				EphemeralStorageSize: opts.EphemeralStorageSize, Timeout: opts.Timeout, Environment: opts.Environment,
				LogGroup: opts.LogGroup, LoggingFormat: opts.LoggingFormat, ReservedConcurrentExecutions: opts.ReservedConcurrentExecutions,
				Code: f.image, Architecture: awslambda.Architecture_X86_64(),
			})
		}
		props := &awslambda.FunctionProps{
			FunctionName: opts.FunctionName, Description: opts.Description, MemorySize: opts.MemorySize,
			EphemeralStorageSize: opts.EphemeralStorageSize, Timeout: opts.Timeout, Environment: opts.Environment,
			LogGroup: opts.LogGroup, LoggingFormat: opts.LoggingFormat, ReservedConcurrentExecutions: opts.ReservedConcurrentExecutions,
			Runtime:      awslambda.Runtime_PROVIDED_AL2023(),
			Architecture: awslambda.Architecture_ARM_64(),
			Handler:      jsii.String("bootstrap"),
			Code:         awslambda.Code_FromAsset(jsii.String(filepath.Join(s.LambdaDir, f.name+".zip")), nil),
		}
		if f.ffmpegLayer {
			props.Layers = &[]awslambda.ILayerVersion{layer}
		}
		return awslambda.NewFunction(stack, jsii.String(f.id), props)
	}

	// The origins the workers fetch for rendered pages: the workers run
	// the pages, Lambda gives them the internet (outside any VPC).
	workerEnv := map[string]*string{}
	if s.RenderOrigins != "" {
		workerEnv[config.EnvRenderOrigins] = jsii.String(s.RenderOrigins)
	}
	worker := function(fn{id: "WorkerFunction", name: "worker", ffmpegLayer: true, memory: s.WorkerMemory, storage: s.WorkerStorage,
		timeout: s.WorkerTimeout, reserved: jsii.Number(float64(s.WorkerConcurrency)), env: workerEnv})
	stitcher := function(fn{id: "StitcherFunction", name: "stitcher", ffmpegLayer: true, memory: s.StitcherMemory, storage: s.StitcherStorage, timeout: 900})
	orchestratorEnv := map[string]*string{
		config.EnvAdapter:          jsii.String(config.AdapterLambda),
		config.EnvWorkerFunction:   worker.FunctionName(),
		config.EnvStitcherFunction: stitcher.FunctionName(),
		config.EnvConcurrency:      jsii.String(strconv.Itoa(s.WorkerConcurrency)),
		// What each function runs with, so the status prices its time.
		config.EnvSizes: jsii.String(s.sizes()),
	}
	workers := []awslambda.Function{worker}
	if s.BrowserWorker {
		browserAllowed := jsii.String(s.AllowedCommands + "," + job.RendererProgram)
		ignore, err := os.ReadFile(filepath.Join(s.SourceDir, BrowserWorkerDockerfile+".dockerignore"))
		if err != nil {
			panic(fmt.Sprintf("the browser worker's build context: %v (sourceDir=%s: expected the repository root)", err, s.SourceDir))
		}
		browser := function(fn{id: "BrowserWorkerFunction", name: "browser worker (Chromium, Helios renderer)",
			image: awslambda.DockerImageCode_FromImageAsset(jsii.String(s.SourceDir), &awslambda.AssetImageCodeProps{
				File:       jsii.String(BrowserWorkerDockerfile),
				Platform:   awsecrassets.Platform_LINUX_AMD64(),
				Exclude:    jsii.Strings(ignorePatterns(string(ignore))...),
				IgnoreMode: awscdk.IgnoreMode_DOCKER,
			}),
			memory: s.BrowserWorkerMemory, storage: s.BrowserWorkerStorage, timeout: s.BrowserWorkerTimeout,
			reserved: jsii.Number(float64(s.BrowserWorkerConcurrency)),
			env:      merge(workerEnv, map[string]*string{config.EnvAllowedCommands: browserAllowed})})
		workers = append(workers, browser)
		// The orchestrator accepts what either worker may run.
		orchestratorEnv[config.EnvBrowserWorkerFunction] = browser.FunctionName()
		orchestratorEnv[config.EnvAllowedCommands] = browserAllowed
	}
	// The orchestrator is named, so its policy can let it invoke itself (a
	// job longer than one invocation continues in the next) without
	// referring to the function it is attached to.
	orchestratorName := s.StackName + "-orchestrator"
	orchestratorArn := awscdk.Fn_Join(jsii.String(""), &[]*string{jsii.String("arn:"), awscdk.Aws_PARTITION(), jsii.String(":lambda:"),
		awscdk.Aws_REGION(), jsii.String(":"), awscdk.Aws_ACCOUNT_ID(), jsii.String(":function:" + orchestratorName)})
	orchestrator := function(fn{id: "OrchestratorFunction", name: "orchestrator", functionName: jsii.String(orchestratorName),
		memory: s.OrchestratorMemory, storage: 512, timeout: 900, env: orchestratorEnv})

	allow := func(fn awslambda.Function, actions []string, resources ...*string) {
		fn.AddToRolePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Actions:   jsii.Strings(actions...),
			Resources: &resources,
		}))
	}
	// The orchestrator reads and writes jobs/ and renders/, and active/ (one
	// object per running job, which the sweep looks at), reads outputs,
	// lists (so a missing key is a 404, not a 403), and invokes exactly the
	// workers, the stitcher and itself.
	allow(orchestrator, []string{"s3:GetObject", "s3:PutObject", "s3:DeleteObject"}, objects("jobs/*"), objects("renders/*"), objects(layout.ActivePrefix+"*"))
	allow(orchestrator, []string{"s3:GetObject"}, objects(layout.OutputsPrefix+"*"))
	allow(orchestrator, []string{"s3:ListBucket"}, bucketArn)
	invokable := []*string{stitcher.FunctionArn(), orchestratorArn}
	for _, w := range workers {
		invokable = append(invokable, w.FunctionArn())
	}
	allow(orchestrator, []string{"lambda:InvokeFunction"}, invokable...)
	if s.WebhookSecretArn != "" {
		// The key that signs webhooks: read at start, never in the
		// function's configuration.
		orchestrator.AddEnvironment(jsii.String(config.EnvWebhookSecretARN), jsii.String(s.WebhookSecretArn), nil)
		allow(orchestrator, []string{"secretsmanager:GetSecretValue"}, jsii.String(s.WebhookSecretArn))
	}
	// A worker reads assets and completion markers, writes only segments
	// (tagged for expiry) and markers.
	for _, w := range workers {
		allow(w, []string{"s3:GetObject"}, objects(layout.AssetsPrefix+"*"), objects("renders/*/chunks/*"))
		// Delete: an attempt that loses the race to complete its chunk (a
		// hedge, or the attempt it hedged) removes its own upload.
		allow(w, []string{"s3:PutObject", "s3:PutObjectTagging", "s3:AbortMultipartUpload", "s3:DeleteObject"}, objects("renders/*/chunks/*"))
		allow(w, []string{"s3:ListBucket"}, bucketArn)
	}
	// The stitcher reads segments (S3 copies them into the output's parts
	// on its behalf) and writes outputs; a join of more than 10,000 parts
	// goes through intermediate objects <output>.<hex>.tmp, which it
	// removes.
	allow(stitcher, []string{"s3:GetObject"}, objects("renders/*/chunks/*"))
	allow(stitcher, []string{"s3:PutObject", "s3:AbortMultipartUpload"}, objects("renders/*"), objects(layout.OutputsPrefix+"*"))
	allow(stitcher, []string{"s3:DeleteObject"}, objects("renders/*.tmp"), objects(layout.OutputsPrefix+"*.tmp"))
	allow(stitcher, []string{"s3:ListBucket"}, bucketArn)

	// Uploads of jobs/*.json start the orchestrator; nothing under renders/
	// does, so the orchestrator cannot trigger itself.
	permission := awslambda.NewCfnPermission(stack, jsii.String("JobUploadInvokePermission"), &awslambda.CfnPermissionProps{
		Action:        jsii.String("lambda:InvokeFunction"),
		FunctionName:  orchestrator.FunctionArn(),
		Principal:     jsii.String("s3.amazonaws.com"),
		SourceArn:     bucketArn,
		SourceAccount: awscdk.Aws_ACCOUNT_ID(),
	})
	cfnBucket := bucket.Node().DefaultChild().(awss3.CfnBucket)
	cfnBucket.SetNotificationConfiguration(&awss3.CfnBucket_NotificationConfigurationProperty{
		LambdaConfigurations: &[]any{&awss3.CfnBucket_LambdaConfigurationProperty{
			Event:    jsii.String("s3:ObjectCreated:*"),
			Function: orchestrator.FunctionArn(),
			Filter: &awss3.CfnBucket_NotificationFilterProperty{S3Key: &awss3.CfnBucket_S3KeyFilterProperty{Rules: &[]any{
				&awss3.CfnBucket_FilterRuleProperty{Name: jsii.String("prefix"), Value: jsii.String(layout.JobsPrefix)},
				&awss3.CfnBucket_FilterRuleProperty{Name: jsii.String("suffix"), Value: jsii.String(".json")},
			}}},
		}},
	})
	bucket.Node().AddDependency(permission)

	url := orchestrator.AddFunctionUrl(&awslambda.FunctionUrlOptions{AuthType: awslambda.FunctionUrlAuthType_AWS_IAM})

	// An asynchronous invocation of the orchestrator (an S3 event, its own
	// {"jobId"} continuation, a sweep) that still fails after Lambda's two
	// retries lands here instead of being dropped; the alarm below says so.
	// The sweep resumes such a job anyway; the queue keeps the event and its
	// error for 14 days.
	failures := awssqs.NewQueue(stack, jsii.String("OrchestratorFailureQueue"), &awssqs.QueueProps{
		QueueName:       jsii.String(s.StackName + "-orchestrator-failures"),
		Encryption:      awssqs.QueueEncryption_SQS_MANAGED,
		RetentionPeriod: awscdk.Duration_Days(jsii.Number(14)),
	})
	// Also grants the orchestrator's role sqs:SendMessage on the queue.
	orchestrator.ConfigureAsyncInvoke(&awslambda.EventInvokeConfigOptions{
		RetryAttempts: jsii.Number(2),
		OnFailure:     awslambdadestinations.NewSqsDestination(failures),
	})

	// The sweep: every 5 minutes EventBridge Scheduler invokes the
	// orchestrator with {"sweep": {}}, which resumes jobs whose lease ran out
	// without anyone continuing them (see pkg/orchestrator's Sweep). The
	// schedule's role may invoke the orchestrator and send to the schedule's
	// dead-letter queue (EventBridge Scheduler delivers dead letters with
	// the schedule's role), nothing else.
	sweepDLQ := awssqs.NewQueue(stack, jsii.String("SweepDeadLetterQueue"), &awssqs.QueueProps{
		QueueName:       jsii.String(s.StackName + "-sweep-dlq"),
		Encryption:      awssqs.QueueEncryption_SQS_MANAGED,
		RetentionPeriod: awscdk.Duration_Days(jsii.Number(14)),
	})
	sweepRole := awsiam.NewRole(stack, jsii.String("SweepScheduleRole"), &awsiam.RoleProps{
		Description: jsii.String("EventBridge Scheduler: invoke the Helios orchestrator's sweep"),
		AssumedBy: awsiam.NewServicePrincipal(jsii.String("scheduler.amazonaws.com"), nil).WithConditions(&map[string]any{
			"StringEquals": map[string]any{"aws:SourceAccount": awscdk.Aws_ACCOUNT_ID()},
		}),
		InlinePolicies: &map[string]awsiam.PolicyDocument{
			"InvokeOrchestrator": awsiam.NewPolicyDocument(&awsiam.PolicyDocumentProps{Statements: &[]awsiam.PolicyStatement{
				awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
					Actions:   jsii.Strings("lambda:InvokeFunction"),
					Resources: jsii.Strings(*orchestrator.FunctionArn()),
				}),
				awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
					Actions:   jsii.Strings("sqs:SendMessage"),
					Resources: jsii.Strings(*sweepDLQ.QueueArn()),
				}),
			}}),
		},
	})
	awsscheduler.NewCfnSchedule(stack, jsii.String("SweepSchedule"), &awsscheduler.CfnScheduleProps{
		Name:               jsii.String(s.StackName + "-sweep"),
		Description:        jsii.String("Helios: resume jobs left behind"),
		ScheduleExpression: jsii.String("rate(5 minutes)"),
		FlexibleTimeWindow: &awsscheduler.CfnSchedule_FlexibleTimeWindowProperty{Mode: jsii.String("OFF")},
		State:              jsii.String("ENABLED"),
		Target: &awsscheduler.CfnSchedule_TargetProperty{
			Arn:     orchestrator.FunctionArn(),
			RoleArn: sweepRole.RoleArn(),
			Input:   jsii.String(SweepInput),
			// A sweep that cannot be delivered within 5 minutes is replaced
			// by the next one.
			RetryPolicy: &awsscheduler.CfnSchedule_RetryPolicyProperty{
				MaximumRetryAttempts:     jsii.Number(2),
				MaximumEventAgeInSeconds: jsii.Number(300),
			},
			DeadLetterConfig: &awsscheduler.CfnSchedule_DeadLetterConfigProperty{Arn: sweepDLQ.QueueArn()},
		},
	})

	alarm := func(id, description string, metric awscloudwatch.IMetric) {
		a := awscloudwatch.NewAlarm(stack, jsii.String(id), &awscloudwatch.AlarmProps{
			AlarmDescription:   jsii.String(description),
			Metric:             metric,
			Threshold:          jsii.Number(1),
			EvaluationPeriods:  jsii.Number(1),
			ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
			TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
		})
		if s.AlarmTopicArn != "" {
			a.AddAlarmAction(awscloudwatchactions.NewSnsAction(awssns.Topic_FromTopicArn(stack, jsii.String(id+"Topic"), jsii.String(s.AlarmTopicArn))))
		}
	}
	period := &awscloudwatch.MetricOptions{Period: awscdk.Duration_Minutes(jsii.Number(5)), Statistic: jsii.String("Sum")}
	alarm("WorkerErrorsAlarm", "Helios worker errors in the last 5 minutes", worker.MetricErrors(period))
	alarm("WorkerThrottlesAlarm", "Helios worker throttles in the last 5 minutes", worker.MetricThrottles(period))
	if len(workers) > 1 {
		alarm("BrowserWorkerErrorsAlarm", "Helios browser worker errors in the last 5 minutes", workers[1].MetricErrors(period))
		alarm("BrowserWorkerThrottlesAlarm", "Helios browser worker throttles in the last 5 minutes", workers[1].MetricThrottles(period))
	}
	spendAlarm(stack, s, workers)
	visible := &awscloudwatch.MetricOptions{Period: awscdk.Duration_Minutes(jsii.Number(5)), Statistic: jsii.String("Maximum")}
	alarm("OrchestratorFailuresAlarm", "Helios orchestrator events failed after every retry: see the queue "+s.StackName+"-orchestrator-failures",
		failures.MetricApproximateNumberOfMessagesVisible(visible))
	alarm("SweepDeadLetterAlarm", "Helios sweep schedule could not invoke the orchestrator: see the queue "+s.StackName+"-sweep-dlq",
		sweepDLQ.MetricApproximateNumberOfMessagesVisible(visible))

	// The orchestrator logs each finished job's figures in Embedded Metric
	// Format (pkg/metrics): metrics of the Helios namespace, by state.
	jobMetric := func(name, state, statistic string) awscloudwatch.IMetric {
		return awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
			Namespace: jsii.String(metrics.Namespace), MetricName: jsii.String(name),
			DimensionsMap: &map[string]*string{"State": jsii.String(state)},
			Statistic:     jsii.String(statistic), Period: awscdk.Duration_Hours(jsii.Number(1)),
			Label: jsii.String(name + " (" + state + ", " + statistic + ")"),
		})
	}
	graph := func(title string, ms ...awscloudwatch.IMetric) awscloudwatch.IWidget {
		return awscloudwatch.NewGraphWidget(&awscloudwatch.GraphWidgetProps{Title: jsii.String(title), Left: &ms, Width: jsii.Number(8)})
	}
	awscloudwatch.NewDashboard(stack, jsii.String("JobsDashboard"), &awscloudwatch.DashboardProps{
		DashboardName: jsii.String(s.StackName + "-jobs"),
		Widgets: &[]*[]awscloudwatch.IWidget{
			{
				graph("Jobs ended", jobMetric("Chunks", string(job.StateDone), "SampleCount"), jobMetric("Chunks", string(job.StateFailed), "SampleCount"),
					jobMetric("Chunks", string(job.StateCancelled), "SampleCount")),
				graph("Job duration (ms)", jobMetric("JobDuration", string(job.StateDone), "Average"), jobMetric("JobDuration", string(job.StateDone), "Maximum")),
				graph("Chunks, retries and hedges", jobMetric("Chunks", string(job.StateDone), "Sum"), jobMetric("Retries", string(job.StateDone), "Sum"),
					jobMetric("Hedges", string(job.StateDone), "Sum")),
			},
			{
				graph("Worker seconds", jobMetric("WorkerSeconds", string(job.StateDone), "Sum"), jobMetric("WorkerSeconds", string(job.StateFailed), "Sum")),
				graph("Estimated cost (USD)", jobMetric("EstimatedCostUSD", string(job.StateDone), "Sum"), jobMetric("EstimatedCostUSD", string(job.StateFailed), "Sum")),
			},
		},
	})

	output := func(id, desc string, value *string) {
		awscdk.NewCfnOutput(stack, jsii.String(id), &awscdk.CfnOutputProps{Description: jsii.String(desc), Value: value})
	}
	output("BucketName", "Upload job specs to s3://<bucket>/jobs/<id>.json", bucket.BucketName())
	output("FunctionUrl", "Orchestrator HTTP API (SigV4-signed): POST /jobs, GET /jobs/{id}, DELETE /jobs/{id}", url.Url())
	output("OrchestratorFunctionName", "Orchestrator function", orchestrator.FunctionName())
	output("WorkerFunctionName", "Chunk worker function", worker.FunctionName())
	output("StitcherFunctionName", "Stitcher function", stitcher.FunctionName())
	if len(workers) > 1 {
		output("BrowserWorkerFunctionName", "Browser worker function (Helios compositions)", workers[1].FunctionName())
	}
	output("OrchestratorFailureQueueUrl", "Orchestrator events that failed after every retry", failures.QueueUrl())
	return stack
}
