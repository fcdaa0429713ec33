// Package config reads the environment of the functions and the CLI, in one
// place. Each variable is a constant here so the infrastructure code that
// sets them (CDK, Cloud Run, SAM) uses the same names.
package config

import (
	"cmp"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/helios-project/infrastructure/pkg/cost"
	"github.com/helios-project/infrastructure/pkg/ffargs"
	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/pagefetch"
)

// Environment variable names.
const (
	EnvStorageURL            = "HELIOS_STORAGE_URL"
	EnvAdapter               = "HELIOS_ADAPTER"
	EnvAllowedCommands       = "HELIOS_ALLOWED_COMMANDS"
	EnvConcurrency           = "HELIOS_CONCURRENCY"
	EnvStatusInterval        = "HELIOS_STATUS_INTERVAL"
	EnvStitchTimeout         = "HELIOS_STITCH_TIMEOUT"
	EnvSizes                 = "HELIOS_SIZES"
	EnvPrices                = "HELIOS_PRICES"
	EnvBudgetUSD             = "HELIOS_BUDGET_USD"
	EnvBudgetWorkerSeconds   = "HELIOS_BUDGET_WORKER_SECONDS"
	EnvLogLevel              = "HELIOS_LOG_LEVEL"
	EnvWorkerFunction        = "HELIOS_WORKER_FUNCTION"
	EnvStitcherFunction      = "HELIOS_STITCHER_FUNCTION"
	EnvBrowserWorkerFunction = "HELIOS_BROWSER_WORKER_FUNCTION"
	EnvBrowserWorkerURL      = "HELIOS_BROWSER_WORKER_URL"
	EnvWorkerURL             = "HELIOS_WORKER_URL"
	EnvStitcherURL           = "HELIOS_STITCHER_URL"
	EnvRequestTimeout        = "HELIOS_REQUEST_TIMEOUT"
	EnvContinueTopic         = "HELIOS_CONTINUE_TOPIC"
	EnvCommandNetwork        = "HELIOS_COMMAND_NETWORK"
	EnvHTTPToken             = "HELIOS_HTTP_TOKEN"
	EnvWebhookSecret         = "HELIOS_WEBHOOK_SECRET"
	EnvWebhookAllowPrivate   = "HELIOS_WEBHOOK_ALLOW_PRIVATE"
	EnvWebhookSecretARN      = "HELIOS_WEBHOOK_SECRET_ARN"
	EnvHedgeShare            = "HELIOS_HEDGE_SHARE"
	EnvRenderOrigins         = "HELIOS_RENDER_ORIGINS"
	EnvFFmpegFilters         = "HELIOS_FFMPEG_FILTERS"
	EnvFFmpegOptions         = "HELIOS_FFMPEG_OPTIONS"
	EnvLeaseTTL              = "HELIOS_LEASE_TTL"
)

// Names lists every variable, for documentation and infrastructure tests.
var Names = []string{
	EnvStorageURL, EnvAdapter, EnvAllowedCommands, EnvConcurrency, EnvStatusInterval,
	EnvStitchTimeout, EnvSizes, EnvPrices, EnvBudgetUSD, EnvBudgetWorkerSeconds, EnvLogLevel, EnvWorkerFunction, EnvStitcherFunction,
	EnvWorkerURL, EnvStitcherURL, EnvRequestTimeout, EnvContinueTopic, EnvCommandNetwork, EnvHTTPToken,
	EnvBrowserWorkerFunction, EnvBrowserWorkerURL, EnvWebhookSecret, EnvWebhookAllowPrivate, EnvWebhookSecretARN, EnvHedgeShare,
	EnvRenderOrigins, EnvFFmpegFilters, EnvFFmpegOptions, EnvLeaseTTL,
}

// Variables the platforms set, read here too so one place knows the
// environment.
const (
	EnvLambdaRuntimeAPI   = "AWS_LAMBDA_RUNTIME_API"   // set on Lambda: serve the Lambda runtime API
	EnvLambdaFunctionName = "AWS_LAMBDA_FUNCTION_NAME" // this function, on Lambda
	EnvPort               = "PORT"                     // HTTP port elsewhere (Cloud Run sets it)
	EnvCloudRunService    = "K_SERVICE"                // set on Cloud Run
)

// Adapter kinds.
const (
	AdapterLocal    = "local"
	AdapterLambda   = "lambda"
	AdapterCloudRun = "cloudrun"
)

// Defaults.
const (
	DefaultStorageURL      = ".helios"
	DefaultAllowedCommands = "ffmpeg"
	DefaultHedgeShare      = 0.05
)

// Config is the validated environment.
type Config struct {
	StorageURL            string
	Adapter               string
	Allowed               job.Allowlist
	Concurrency           int           // chunks in flight; 0: the orchestrator's default (CPUs)
	StatusInterval        time.Duration // 0: the orchestrator's default
	StitchTimeout         time.Duration // 0: the orchestrator's default
	LeaseTTL              time.Duration // a job's lease without renewal; 0: the orchestrator's default
	Cost                  cost.Model    // prices the platform's bill: the adapter's platform, HELIOS_SIZES and HELIOS_PRICES
	Budget                job.Budget    // every job's cap (HELIOS_BUDGET_USD, HELIOS_BUDGET_WORKER_SECONDS)
	LogLevel              slog.Level
	WorkerFunction        string
	StitcherFunction      string
	WorkerURL             string        // Cloud Run worker service URL
	StitcherURL           string        // Cloud Run stitcher service URL
	BrowserWorkerFunction string        // Lambda worker with Chromium for `helios` jobs; "": the worker
	BrowserWorkerURL      string        // Cloud Run worker with Chromium for `helios` jobs; "": the worker
	RequestTimeout        time.Duration // the HTTP platform's request limit (Cloud Run service timeout); 0: none
	ContinueTopic         string        // Pub/Sub topic (projects/P/topics/T) a long job continues through
	CommandNetwork        bool          // job commands may use the network (off by default)
	HTTPToken             string        // bearer token of functions served over HTTP on this machine
	WebhookSecret         string        // signs webhook deliveries; "": specs' webhooks are not sent
	WebhookSecretARN      string        // on Lambda: the Secrets Manager secret that holds WebhookSecret
	WebhookAllowPrivate   bool          // webhooks may reach loopback and private addresses (tests)
	HedgeShare            float64       // most hedges of a run, as a share of its chunks; 0: no hedging
	RenderOrigins         []string      // origins the worker fetches for rendered pages (pkg/pagefetch), normalized
	FFmpeg                ffargs.Extra  // filters and options the deployment adds to the ffmpeg allowlists

	// Platform.
	OnLambda           bool   // AWS_LAMBDA_RUNTIME_API is set
	LambdaFunctionName string // this function's name on Lambda
	Port               string // HTTP port when not on Lambda (default 8080)
	OnCloudRun         bool   // K_SERVICE is set: listen on every interface
}

// FromEnv reads the configuration through getenv (os.Getenv in a program).
// Every bad value is reported, naming the variable and what it expects.
// Settings left unset keep their zero value where the part that uses them
// has the default (the orchestrator's concurrency, intervals and lease).
func FromEnv(getenv func(string) string) (Config, error) {
	r := &envReader{getenv: getenv}
	c := r.names()
	r.platform(&c)
	r.adapter(&c)
	r.webhook(&c)
	c.WebhookAllowPrivate = r.onOff(EnvWebhookAllowPrivate)
	c.CommandNetwork = r.onOff(EnvCommandNetwork)
	r.renderer(&c)
	r.timing(&c)
	r.spending(&c)
	if v := r.get(EnvLogLevel, "info"); c.LogLevel.UnmarshalText([]byte(v)) != nil {
		r.bad(EnvLogLevel, v, "debug, info, warn or error")
	}
	if len(r.problems) > 0 {
		return c, fmt.Errorf("configuration: %s", strings.Join(r.problems, "; "))
	}
	return c, nil
}

// envReader reads variables and collects every problem, so that one run
// reports them all.
type envReader struct {
	getenv   func(string) string
	problems []string
}

// get is the trimmed value of name, or def when it is unset or blank.
func (r *envReader) get(name, def string) string {
	if v := strings.TrimSpace(r.getenv(name)); v != "" {
		return v
	}
	return def
}

func (r *envReader) bad(name, value, want string) {
	r.problems = append(r.problems, fmt.Sprintf("%s=%q: expected %s", name, value, want))
}

func (r *envReader) problem(format string, args ...any) {
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
}

// names reads the variables taken as they are: names, URLs and keys.
func (r *envReader) names() Config {
	return Config{
		StorageURL:            r.get(EnvStorageURL, DefaultStorageURL),
		Adapter:               r.get(EnvAdapter, AdapterLocal),
		Allowed:               job.ParseAllowlist(r.get(EnvAllowedCommands, DefaultAllowedCommands)),
		WorkerFunction:        r.get(EnvWorkerFunction, ""),
		StitcherFunction:      r.get(EnvStitcherFunction, ""),
		WorkerURL:             r.get(EnvWorkerURL, ""),
		StitcherURL:           r.get(EnvStitcherURL, ""),
		BrowserWorkerFunction: r.get(EnvBrowserWorkerFunction, ""),
		BrowserWorkerURL:      r.get(EnvBrowserWorkerURL, ""),
		ContinueTopic:         r.get(EnvContinueTopic, ""),
		HTTPToken:             r.get(EnvHTTPToken, ""),
		WebhookSecret:         r.get(EnvWebhookSecret, ""),
		WebhookSecretARN:      r.get(EnvWebhookSecretARN, ""),
	}
}

// platform reads what the platform sets: where this process runs.
func (r *envReader) platform(c *Config) {
	c.OnLambda = r.get(EnvLambdaRuntimeAPI, "") != ""
	c.LambdaFunctionName = r.get(EnvLambdaFunctionName, "")
	c.Port = r.get(EnvPort, "8080")
	c.OnCloudRun = r.get(EnvCloudRunService, "") != ""
	if n, err := strconv.Atoi(c.Port); err != nil || n < 1 || n > 65535 {
		r.bad(EnvPort, c.Port, "a TCP port number")
	}
	if len(c.Allowed) == 0 {
		r.bad(EnvAllowedCommands, r.getenv(EnvAllowedCommands), "a comma-separated list of program names")
	}
	if c.ContinueTopic != "" && !topicName.MatchString(c.ContinueTopic) {
		r.bad(EnvContinueTopic, c.ContinueTopic, "a Pub/Sub topic as projects/PROJECT/topics/TOPIC")
	}
}

// adapter checks that the chosen adapter has the functions it calls.
func (r *envReader) adapter(c *Config) {
	switch c.Adapter {
	case AdapterLocal:
	case AdapterLambda:
		if c.WorkerFunction == "" || c.StitcherFunction == "" {
			r.problem("%s=lambda needs %s and %s (function names or ARNs)", EnvAdapter, EnvWorkerFunction, EnvStitcherFunction)
		}
	case AdapterCloudRun:
		if c.WorkerURL == "" || c.StitcherURL == "" {
			r.problem("%s=cloudrun needs %s and %s (service URLs)", EnvAdapter, EnvWorkerURL, EnvStitcherURL)
		}
		for name, v := range map[string]string{EnvWorkerURL: c.WorkerURL, EnvStitcherURL: c.StitcherURL, EnvBrowserWorkerURL: c.BrowserWorkerURL} {
			if v != "" && !ServiceURL(v) {
				r.bad(name, v, "an https:// service URL (http:// only on loopback)")
			}
		}
	default:
		r.bad(EnvAdapter, c.Adapter, "local, lambda or cloudrun")
	}
}

// webhook checks the signing key, given one way, without printing it.
func (r *envReader) webhook(c *Config) {
	if c.WebhookSecret == "" {
		return
	}
	if err := CheckWebhookKey(c.WebhookSecret); err != nil {
		r.problem("%s: %v", EnvWebhookSecret, err)
	}
	if c.WebhookSecretARN != "" {
		r.problem("%s and %s are both set: give the key one way", EnvWebhookSecret, EnvWebhookSecretARN)
	}
}

func (r *envReader) onOff(name string) bool {
	switch v := r.get(name, "off"); v {
	case "off":
	case "on":
		return true
	default:
		r.bad(name, v, "off or on")
	}
	return false
}

// renderer reads what a chunk's command may reach: the origins fetched for
// rendered pages and what the deployment adds to ffmpeg's allowlists.
func (r *envReader) renderer(c *Config) {
	for _, o := range strings.Split(r.get(EnvRenderOrigins, ""), ",") {
		if strings.TrimSpace(o) == "" {
			continue
		}
		if origin, err := pagefetch.Origin(o); err != nil {
			r.bad(EnvRenderOrigins, o, "comma-separated origins such as https://fonts.googleapis.com,https://fonts.gstatic.com")
		} else {
			c.RenderOrigins = append(c.RenderOrigins, origin)
		}
	}
	for name, dst := range map[string]*[]string{EnvFFmpegFilters: &c.FFmpeg.Filters, EnvFFmpegOptions: &c.FFmpeg.Options} {
		for _, n := range strings.FieldsFunc(r.get(name, ""), func(ch rune) bool { return ch == ',' || ch == ' ' }) {
			if err := ffargs.CheckExtra(name == EnvFFmpegFilters, n); err != nil {
				r.bad(name, n, err.Error())
				continue
			}
			*dst = append(*dst, n)
		}
	}
}

// timing reads concurrency, intervals and limits. Unset ones stay zero: the
// orchestrator's defaults apply (pkg/orchestrator.Config).
func (r *envReader) timing(c *Config) {
	if v := r.get(EnvRequestTimeout, ""); v != "" {
		c.RequestTimeout = r.duration(EnvRequestTimeout, v)
		if c.RequestTimeout > 0 && c.RequestTimeout < MinRequestTimeout {
			r.bad(EnvRequestTimeout, v, "at least "+MinRequestTimeout.String()+" (the orchestrator stops 15s before it; Cloud Run allows up to 60m)")
		}
	} else if c.OnCloudRun {
		c.RequestTimeout = 60 * time.Minute // Cloud Run's longest request; deploy sets it from the service
	}
	if v := r.get(EnvConcurrency, ""); v != "" {
		if n, err := strconv.Atoi(v); err != nil || n < 1 || n > MaxConcurrency {
			r.bad(EnvConcurrency, v, "a whole number from 1 to "+strconv.Itoa(MaxConcurrency))
		} else {
			c.Concurrency = n
		}
	}
	if v := r.get(EnvStatusInterval, ""); v != "" {
		c.StatusInterval = r.duration(EnvStatusInterval, v)
	}
	if v := r.get(EnvStitchTimeout, ""); v != "" {
		c.StitchTimeout = r.duration(EnvStitchTimeout, v)
	}
	c.LeaseTTL = r.leaseTTL()
}

func (r *envReader) leaseTTL() time.Duration {
	v := r.get(EnvLeaseTTL, "")
	if v == "" {
		return 0
	}
	d := r.duration(EnvLeaseTTL, v)
	if d > 0 && (d < MinLeaseTTL || d > MaxLeaseTTL) {
		r.bad(EnvLeaseTTL, v, "from "+MinLeaseTTL.String()+" to "+MaxLeaseTTL.String()+" (a lease is renewed every third of it; a crashed run's job waits it out)")
	}
	return d
}

// spending reads the price model of the platform and the caps on a job.
func (r *envReader) spending(c *Config) {
	platform := map[string]string{AdapterLambda: cost.Lambda, AdapterCloudRun: cost.CloudRun}[c.Adapter]
	if m, err := cost.Default(cmp.Or(platform, cost.Local)); err == nil {
		if c.Cost, err = m.Override(r.get(EnvSizes, ""), r.get(EnvPrices, "")); err != nil {
			r.problem("%s / %s: %v", EnvSizes, EnvPrices, err)
		}
	}
	for name, limit := range map[string]*float64{EnvBudgetUSD: &c.Budget.USD, EnvBudgetWorkerSeconds: &c.Budget.WorkerSeconds} {
		v := r.get(name, "0")
		if f, err := strconv.ParseFloat(v, 64); err != nil || !(f >= 0) {
			r.bad(name, v, "a non-negative number (0: no cap)")
		} else {
			*limit = f
		}
	}
	v := r.get(EnvHedgeShare, strconv.FormatFloat(DefaultHedgeShare, 'g', -1, 64))
	if f, err := strconv.ParseFloat(v, 64); err != nil || f < 0 || f > 1 {
		r.bad(EnvHedgeShare, v, "a share from 0 (no hedging) to 1, such as 0.05")
	} else {
		c.HedgeShare = f
	}
}

func (r *envReader) duration(name, v string) time.Duration {
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		r.bad(name, v, "a positive duration such as 1s or 15m")
	}
	return d
}

// CheckWebhookKey refuses a key too short to sign with, without printing it.
func CheckWebhookKey(key string) error {
	if len(key) < 32 {
		return fmt.Errorf("expected at least 32 characters (a random key, e.g. openssl rand -hex 32); got %d", len(key))
	}
	return nil
}

// MaxConcurrency bounds the chunks in flight (HELIOS_CONCURRENCY, --concurrency).
const MaxConcurrency = 10_000

// MinLeaseTTL and MaxLeaseTTL bound HELIOS_LEASE_TTL: renewed every third
// of its life, a lease shorter than a few seconds is lost to one slow
// storage request; a long one keeps a crashed run's job waiting.
const (
	MinLeaseTTL = 3 * time.Second
	MaxLeaseTTL = 5 * time.Minute
)

// MinRequestTimeout is the shortest HELIOS_REQUEST_TIMEOUT: a run stops 15 s
// before the limit and must have time left to do something.
const MinRequestTimeout = 20 * time.Second

// topicName is a full Pub/Sub topic name.
var topicName = regexp.MustCompile(`^projects/[a-z][a-z0-9-]{4,28}[a-z0-9]/topics/[A-Za-z][A-Za-z0-9._~+%-]{2,254}$`)

// ServiceURL reports whether u can name a service the orchestrator calls:
// https, or plain http to a loopback address (a service running on this
// machine, where no platform checks an identity token).
func ServiceURL(u string) bool {
	p, err := url.Parse(u)
	if err != nil || p.Host == "" || p.User != nil {
		return false
	}
	switch p.Scheme {
	case "https":
		return true
	case "http":
		host := p.Hostname()
		if host == "localhost" {
			return true
		}
		ip := net.ParseIP(host)
		return ip != nil && ip.IsLoopback()
	}
	return false
}
