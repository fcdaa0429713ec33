package config_test

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/helios-project/infrastructure/pkg/config"
	"github.com/helios-project/infrastructure/pkg/job"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestDefaults(t *testing.T) {
	c, err := config.FromEnv(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.StorageURL != ".helios" || c.Adapter != "local" || strings.Join(c.Allowed, ",") != "ffmpeg" ||
		c.Concurrency != 0 || c.StatusInterval != 0 || c.StitchTimeout != 0 || c.LeaseTTL != 0 || c.LogLevel != slog.LevelInfo || c.HedgeShare != 0.05 {
		t.Errorf("defaults = %+v (unset timings stay zero: the orchestrator's defaults apply)", c)
	}
}

func TestValues(t *testing.T) {
	c, err := config.FromEnv(env(map[string]string{
		config.EnvStorageURL: "s3://b", config.EnvAdapter: "lambda", config.EnvWorkerFunction: "w",
		config.EnvStitcherFunction: "arn:aws:lambda:eu-west-1:1:function:s", config.EnvAllowedCommands: "ffmpeg, helios",
		config.EnvConcurrency: "64", config.EnvStatusInterval: "250ms", config.EnvLeaseTTL: "10s", config.EnvSizes: `{"worker": {"memoryMb": 1024, "arch": "x86_64"}}`,
		config.EnvPrices: `{"lambdaRequest": 0.000001}`, config.EnvBudgetUSD: "2.5",
		config.EnvLogLevel: "debug", config.EnvHedgeShare: "0",
		config.EnvRenderOrigins: "https://fonts.googleapis.com, https://Fonts.GStatic.com:443",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Adapter != "lambda" || c.WorkerFunction != "w" || strings.Join(c.Allowed, ",") != "ffmpeg,helios" ||
		c.Concurrency != 64 || c.StatusInterval != 250*time.Millisecond || c.LeaseTTL != 10*time.Second || c.Cost.Platform != "lambda" || c.Cost.PerSecond("worker") != 0.0000166667 || c.Cost.Prices.LambdaRequest != 0.000001 ||
		c.Budget != (job.Budget{USD: 2.5}) || c.LogLevel != slog.LevelDebug || c.HedgeShare != 0 ||
		strings.Join(c.RenderOrigins, ",") != "https://fonts.googleapis.com,https://fonts.gstatic.com" {
		t.Errorf("config = %+v", c)
	}
}

func TestBadValuesNameTheVariable(t *testing.T) {
	tests := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{config.EnvAdapter: "k8s"}, "HELIOS_ADAPTER=\"k8s\": expected local, lambda or cloudrun"},
		{map[string]string{config.EnvAdapter: "lambda"}, "HELIOS_ADAPTER=lambda needs HELIOS_WORKER_FUNCTION and HELIOS_STITCHER_FUNCTION"},
		{map[string]string{config.EnvConcurrency: "0"}, "HELIOS_CONCURRENCY=\"0\": expected a whole number from 1 to 10000"},
		{map[string]string{config.EnvConcurrency: "many"}, "HELIOS_CONCURRENCY"},
		{map[string]string{config.EnvStatusInterval: "soon"}, "HELIOS_STATUS_INTERVAL=\"soon\": expected a positive duration"},
		{map[string]string{config.EnvStitchTimeout: "-1m"}, "HELIOS_STITCH_TIMEOUT"},
		{map[string]string{config.EnvLeaseTTL: "1s"}, `HELIOS_LEASE_TTL="1s": expected from 3s to 5m0s`},
		{map[string]string{config.EnvLeaseTTL: "soon"}, `HELIOS_LEASE_TTL="soon": expected a positive duration`},
		{map[string]string{config.EnvBudgetUSD: "-1"}, "HELIOS_BUDGET_USD=\"-1\": expected a non-negative number"},
		{map[string]string{config.EnvBudgetWorkerSeconds: "NaN"}, "HELIOS_BUDGET_WORKER_SECONDS"},
		{map[string]string{config.EnvSizes: `{"worker": {"memoryMb": -1}}`}, "HELIOS_SIZES / HELIOS_PRICES: sizes: worker: expected memoryMb > 0"},
		{map[string]string{config.EnvPrices: `{"free": true}`}, `HELIOS_SIZES / HELIOS_PRICES: prices: expected a JSON object: json: unknown field "free"`},
		{map[string]string{config.EnvLogLevel: "loud"}, "HELIOS_LOG_LEVEL=\"loud\""},
		{map[string]string{config.EnvAllowedCommands: " , "}, "HELIOS_ALLOWED_COMMANDS"},
		{map[string]string{config.EnvWebhookSecret: "short-secret"}, "HELIOS_WEBHOOK_SECRET: expected at least 32 characters"},
		{map[string]string{config.EnvWebhookSecret: strings.Repeat("k", 32), config.EnvWebhookSecretARN: "arn:aws:secretsmanager:x"},
			"HELIOS_WEBHOOK_SECRET and HELIOS_WEBHOOK_SECRET_ARN are both set"},
		{map[string]string{config.EnvHedgeShare: "5%"}, "HELIOS_HEDGE_SHARE=\"5%\": expected a share from 0 (no hedging) to 1"},
		{map[string]string{config.EnvHedgeShare: "2"}, "HELIOS_HEDGE_SHARE"},
		{map[string]string{config.EnvRenderOrigins: "https://fonts.gstatic.com,fonts.googleapis.com"}, `HELIOS_RENDER_ORIGINS="fonts.googleapis.com": expected comma-separated origins`},
		{map[string]string{config.EnvRenderOrigins: "https://cdn.example/fonts"}, "HELIOS_RENDER_ORIGINS"},
		{map[string]string{config.EnvWebhookAllowPrivate: "yes"}, "HELIOS_WEBHOOK_ALLOW_PRIVATE=\"yes\": expected off or on"},
		{map[string]string{config.EnvAdapter: "cloudrun", config.EnvWorkerURL: "https://w", config.EnvStitcherURL: "https://s", config.EnvBrowserWorkerURL: "http://example.com"}, "HELIOS_BROWSER_WORKER_URL"},
	}
	for _, tt := range tests {
		_, err := config.FromEnv(env(tt.env))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: err = %v, want it to contain %q", tt.env, err, tt.want)
		}
	}
	// A bad key is reported without its value.
	if _, err := config.FromEnv(env(map[string]string{config.EnvWebhookSecret: "short-secret"})); err == nil || strings.Contains(err.Error(), "short-secret") {
		t.Errorf("a short webhook secret: %v", err)
	}
	// Every problem is reported at once.
	_, err := config.FromEnv(env(map[string]string{config.EnvConcurrency: "x", config.EnvLogLevel: "y"}))
	if err == nil || !strings.Contains(err.Error(), "HELIOS_CONCURRENCY") || !strings.Contains(err.Error(), "HELIOS_LOG_LEVEL") {
		t.Errorf("two bad values: %v", err)
	}
}
