// Package gcplocal runs the Google Cloud deployment on loopback: a GCS
// server (fake-gcs-server, in process) that publishes object notifications
// to a Pub/Sub server (pstest, in process), a push relay that delivers
// subscriptions over HTTP the way Pub/Sub push does, and the function
// binaries served by functions-framework-go behind a front that behaves like
// Cloud Run (instances of fixed concurrency, 429 when none is free). Tests
// and `make demo-gcp-local` use it; nothing here reaches Google.
package gcplocal

import (
	"context"
	"fmt"
	"net"
	"strconv"

	"cloud.google.com/go/storage"
	"github.com/fsouza/fake-gcs-server/fakestorage"

	"github.com/helios-project/infrastructure/internal/localnet"
)

// Environment variables the Google client libraries read to reach emulators.
const (
	EnvStorageEmulator = "STORAGE_EMULATOR_HOST"
	EnvPubSubEmulator  = "PUBSUB_EMULATOR_HOST"
)

// GCS is a GCS-compatible server on loopback. It honours conditional
// creates (ifGenerationMatch=0), resumable uploads, compose and
// notification configs (published to the Pub/Sub server that
// PUBSUB_EMULATOR_HOST names when the notification fires).
type GCS struct {
	Host string // 127.0.0.1:port: STORAGE_EMULATOR_HOST
	srv  *fakestorage.Server
}

// StartGCS starts the server with the given buckets created.
func StartGCS(buckets ...string) (*GCS, error) {
	port, err := localnet.FreePort()
	if err != nil {
		return nil, err
	}
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{
		Scheme: "http", Host: "127.0.0.1", Port: uint16(port),
		// Without it the client reads through the XML API and sees nothing.
		PublicHost: "127.0.0.1",
	})
	if err != nil {
		return nil, fmt.Errorf("start GCS server: %w", err)
	}
	for _, b := range buckets {
		srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: b})
	}
	return &GCS{Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), srv: srv}, nil
}

// Env is what points the storage clients (cloud.google.com/go/storage and
// gocloud's gcsblob) of a process at this server.
func (g *GCS) Env() map[string]string { return map[string]string{EnvStorageEmulator: g.Host} }

// BucketURL is a bucket's HELIOS_STORAGE_URL (the process needs Env).
func (g *GCS) BucketURL(bucket string) string { return "gs://" + bucket }

// Client is a storage client of this server.
func (g *GCS) Client() *storage.Client { return g.srv.Client() }

// Object returns an object's attributes as the server keeps them.
func (g *GCS) Object(ctx context.Context, bucket, key string) (*storage.ObjectAttrs, error) {
	return g.Client().Bucket(bucket).Object(key).Attrs(ctx)
}

// Close stops the server.
func (g *GCS) Close() { g.srv.Stop() }
