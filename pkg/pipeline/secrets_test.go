package pipeline

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/helios-project/infrastructure/internal/awslocal"
	"github.com/helios-project/infrastructure/pkg/config"
)

// secretsManager answers GetSecretValue as AWS Secrets Manager does (JSON
// 1.1 over POST, the operation in X-Amz-Target), from secrets by id.
func secretsManager(t *testing.T, secrets map[string]string) {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in struct{ SecretId string }
		if r.Header.Get("X-Amz-Target") != "secretsmanager.GetSecretValue" || json.NewDecoder(r.Body).Decode(&in) != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 Credential="+awslocal.AccessKeyID) {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		secret, ok := secrets[in.SecretId]
		if !ok {
			w.WriteHeader(http.StatusBadRequest)
			json.NewEncoder(w).Encode(map[string]string{"__type": "ResourceNotFoundException", "message": "Secrets Manager can't find the specified secret."})
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"ARN": in.SecretId, "Name": "webhook", "SecretString": secret, "VersionId": "v1"})
	}))
	t.Cleanup(srv.Close)
	for k, v := range awslocal.CredentialsEnv() {
		t.Setenv(k, v)
	}
	t.Setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", srv.URL)
}

// On Lambda the webhook key is read from Secrets Manager at start, never
// kept in the function's configuration; a missing or short secret stops
// the start with a message that names the secret, not its value.
func TestWebhookKeyFromSecretsManager(t *testing.T) {
	const arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:helios-webhook-AbCdEf"
	const key = "0123456789abcdef0123456789abcdef-key"
	secretsManager(t, map[string]string{arn: key, "short": "tiny-secret"})
	tests := []struct {
		cfg     config.Config
		want    string
		wantErr string
	}{
		{config.Config{WebhookSecretARN: arn}, key, ""},
		{config.Config{WebhookSecret: "from-the-environment-0123456789abcdef"}, "from-the-environment-0123456789abcdef", ""},
		{config.Config{}, "", ""},
		{config.Config{WebhookSecretARN: "nope"}, "", "HELIOS_WEBHOOK_SECRET_ARN=nope"},
		{config.Config{WebhookSecretARN: "short"}, "", "the secret short: expected at least 32 characters"},
	}
	for _, tt := range tests {
		got, err := webhookKey(t.Context(), tt.cfg)
		if got != tt.want || (tt.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("webhookKey(%+v) = %q, %v; want %q, %q", tt.cfg, got, err, tt.want, tt.wantErr)
		}
		if err != nil && strings.Contains(err.Error(), "tiny-secret") {
			t.Errorf("the error shows the secret: %v", err)
		}
	}
}
