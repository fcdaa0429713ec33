package adapter

import (
	"context"
	"fmt"
	"strings"

	"cloud.google.com/go/pubsub/v2"
)

// Topic publishes to a Pub/Sub topic: on Cloud Run, the orchestrator's
// asynchronous self-invocation, as InvokeAsync is on Lambda (the topic's push
// subscription delivers the message to the orchestrator service).
type Topic struct {
	client    *pubsub.Client
	publisher *pubsub.Publisher
}

// OpenTopic opens projects/PROJECT/topics/TOPIC with the Application Default
// Credentials (PUBSUB_EMULATOR_HOST points it at an emulator).
func OpenTopic(ctx context.Context, name string) (*Topic, error) {
	parts := strings.Split(name, "/")
	if len(parts) != 4 || parts[0] != "projects" || parts[2] != "topics" || parts[1] == "" || parts[3] == "" {
		return nil, fmt.Errorf("topic %q: expected projects/PROJECT/topics/TOPIC", name)
	}
	client, err := pubsub.NewClient(ctx, parts[1])
	if err != nil {
		return nil, fmt.Errorf("Pub/Sub client for %s: %w", name, err)
	}
	return &Topic{client: client, publisher: client.Publisher(name)}, nil
}

// Publish sends one message and waits until Pub/Sub has it.
func (t *Topic) Publish(ctx context.Context, data []byte, attributes map[string]string) error {
	if _, err := t.publisher.Publish(ctx, &pubsub.Message{Data: data, Attributes: attributes}).Get(ctx); err != nil {
		return fmt.Errorf("publish to %s: %w", t.publisher, err)
	}
	return nil
}

// Close flushes and closes the client.
func (t *Topic) Close() error {
	t.publisher.Stop()
	return t.client.Close()
}
