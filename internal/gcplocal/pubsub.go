package gcplocal

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/pubsub/v2/pstest"
)

// PubSub is a Pub/Sub server on loopback (pstest) with push delivery: a
// relay pulls a subscription and POSTs each message to an endpoint in the
// push format, acknowledging it on a 2xx answer; on any other answer, or
// when the answer takes longer than the subscription's ack deadline, the
// message is delivered again — Pub/Sub push's at-least-once contract.
type PubSub struct {
	Host    string // PUBSUB_EMULATOR_HOST
	Project string

	srv    *pstest.Server
	client *pubsub.Client
	wg     sync.WaitGroup
	cancel context.CancelFunc
	ctx    context.Context

	mu     sync.Mutex
	pushes map[string]*atomic.Int64 // subscription → deliveries
}

// StartPubSub starts the server. The clients of this process reach it only
// if PUBSUB_EMULATOR_HOST is set (Env): the caller sets it.
func StartPubSub(ctx context.Context, project string) (*PubSub, error) {
	srv := pstest.NewServerWithAddress("127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	p := &PubSub{Host: srv.Addr, Project: project, srv: srv, ctx: ctx, cancel: cancel, pushes: map[string]*atomic.Int64{}}
	return p, nil
}

// Env points a process's Pub/Sub clients at this server.
func (p *PubSub) Env() map[string]string { return map[string]string{EnvPubSubEmulator: p.Host} }

func (p *PubSub) admin(ctx context.Context) (*pubsub.Client, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.client != nil {
		return p.client, nil
	}
	c, err := pubsub.NewClient(ctx, p.Project) // reaches p through PUBSUB_EMULATOR_HOST
	if err != nil {
		return nil, err
	}
	p.client = c
	return c, nil
}

// TopicName is the full name of a topic of the project.
func (p *PubSub) TopicName(topic string) string {
	return "projects/" + p.Project + "/topics/" + topic
}

// CreateTopic creates a topic.
func (p *PubSub) CreateTopic(ctx context.Context, topic string) error {
	c, err := p.admin(ctx)
	if err != nil {
		return err
	}
	_, err = c.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: p.TopicName(topic)})
	return err
}

// Push creates a subscription of topic and pushes its messages to endpoint
// until Close, with token as the bearer token (Pub/Sub sends an OIDC token
// of the push identity), waiting at most ackDeadline for each answer.
func (p *PubSub) Push(ctx context.Context, topic, subscription, endpoint, token string, ackDeadline time.Duration) error {
	c, err := p.admin(ctx)
	if err != nil {
		return err
	}
	name := "projects/" + p.Project + "/subscriptions/" + subscription
	if _, err := c.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{
		Name: name, Topic: p.TopicName(topic), AckDeadlineSeconds: int32(max(ackDeadline/time.Second, 10)),
	}); err != nil {
		return fmt.Errorf("create subscription %s: %w", name, err)
	}
	count := &atomic.Int64{}
	p.mu.Lock()
	p.pushes[subscription] = count
	p.mu.Unlock()
	p.wg.Go(func() { p.relay(c, name, endpoint, token, ackDeadline, count) })
	return nil
}

// Deliveries is how many pushes of a subscription were made.
func (p *PubSub) Deliveries(subscription string) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c := p.pushes[subscription]; c != nil {
		return c.Load()
	}
	return 0
}

// pushBody is the body of a Pub/Sub push request.
type pushBody struct {
	Message struct {
		Data        []byte            `json:"data"`
		Attributes  map[string]string `json:"attributes,omitempty"`
		MessageID   string            `json:"messageId"`
		PublishTime time.Time         `json:"publishTime"`
	} `json:"message"`
	Subscription string `json:"subscription"`
}

func (p *PubSub) relay(c *pubsub.Client, subscription, endpoint, token string, deadline time.Duration, count *atomic.Int64) {
	client := &http.Client{Timeout: deadline}
	for p.ctx.Err() == nil {
		resp, err := c.SubscriptionAdminClient.Pull(p.ctx, &pubsubpb.PullRequest{Subscription: subscription, MaxMessages: 100})
		if err != nil || len(resp.ReceivedMessages) == 0 {
			select {
			case <-p.ctx.Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		for _, rm := range resp.ReceivedMessages {
			p.wg.Go(func() {
				var body pushBody
				body.Subscription = subscription
				body.Message.Data = rm.Message.Data
				body.Message.Attributes = rm.Message.Attributes
				body.Message.MessageID = rm.Message.MessageId
				body.Message.PublishTime = rm.Message.PublishTime.AsTime()
				data, _ := json.Marshal(body)
				count.Add(1)
				ok := false
				req, err := http.NewRequestWithContext(p.ctx, http.MethodPost, endpoint, bytes.NewReader(data))
				if err != nil {
					return
				}
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+token)
				if res, err := client.Do(req); err == nil {
					res.Body.Close()
					ok = res.StatusCode >= 200 && res.StatusCode < 300
				}
				if ok {
					_ = c.SubscriptionAdminClient.Acknowledge(p.ctx, &pubsubpb.AcknowledgeRequest{Subscription: subscription, AckIds: []string{rm.AckId}})
					return
				}
				// Not acknowledged: delivered again after a short backoff
				// (the subscription's minimum retry delay).
				select {
				case <-p.ctx.Done():
					return
				case <-time.After(200 * time.Millisecond):
				}
				_ = c.SubscriptionAdminClient.ModifyAckDeadline(p.ctx, &pubsubpb.ModifyAckDeadlineRequest{
					Subscription: subscription, AckIds: []string{rm.AckId}, AckDeadlineSeconds: 0})
			})
		}
	}
}

// Close stops the relays and the server.
func (p *PubSub) Close() {
	p.cancel()
	p.wg.Wait()
	if p.client != nil {
		p.client.Close()
	}
	p.srv.Close()
}
