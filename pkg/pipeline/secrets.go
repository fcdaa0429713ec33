package pipeline

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/helios-project/infrastructure/pkg/config"
)

// webhookKey is the key that signs webhook deliveries: HELIOS_WEBHOOK_SECRET
// (on Cloud Run, Secret Manager puts it there), or on Lambda the Secrets
// Manager secret HELIOS_WEBHOOK_SECRET_ARN names, read once at start so the
// key is never in the function's configuration. "" means none.
func webhookKey(ctx context.Context, cfg config.Config) (string, error) {
	if cfg.WebhookSecretARN == "" {
		return cfg.WebhookSecret, nil
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return "", fmt.Errorf("load AWS configuration: %w", err)
	}
	out, err := secretsmanager.NewFromConfig(awsCfg).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: &cfg.WebhookSecretARN})
	if err != nil {
		return "", fmt.Errorf("read the webhook key from Secrets Manager (%s=%s): %w", config.EnvWebhookSecretARN, cfg.WebhookSecretARN, err)
	}
	key := aws.ToString(out.SecretString)
	if err := config.CheckWebhookKey(key); err != nil {
		return "", fmt.Errorf("the secret %s: %w", cfg.WebhookSecretARN, err)
	}
	return key, nil
}
