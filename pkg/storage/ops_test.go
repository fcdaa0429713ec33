package storage_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"gocloud.dev/blob"

	"github.com/helios-project/infrastructure/internal/testkit"
	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/storage"
)

// opsSequence makes requests of every kind, a large multipart upload
// among them, in a context that counts them.
func opsSequence(t *testing.T, b *blob.Bucket) job.RequestCounts {
	t.Helper()
	var ops storage.Ops
	ctx := storage.WithOps(t.Context(), &ops)
	big := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(big, bytes.Repeat([]byte("x"), 20<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	steps := []func(ctx context.Context) error{
		func(ctx context.Context) error { return b.WriteAll(ctx, "a/1", []byte("one"), nil) },              // put
		func(ctx context.Context) error { return storage.Create(ctx, b, "a/2", []byte("two")) },            // put
		func(ctx context.Context) error { _, err := b.ReadAll(ctx, "a/1"); return err },                    // get
		func(ctx context.Context) error { _, err := b.Exists(ctx, "a/2"); return err },                     // get (HEAD)
		func(ctx context.Context) error { _, err := storage.List(ctx, b, "a/"); return err },               // list
		func(ctx context.Context) error { return b.Copy(ctx, "a/3", "a/1", nil) },                          // put
		func(ctx context.Context) error { _, err := storage.UploadFile(ctx, b, big, "a/big"); return err }, // 3 parts: create, 3, complete
		func(ctx context.Context) error { return b.Delete(ctx, "a/3") },                                    // free
	}
	for i, step := range steps {
		if err := step(ctx); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	// Requests made without a counter count nowhere.
	if _, err := b.ReadAll(t.Context(), "a/2"); err != nil {
		t.Fatal(err)
	}
	return ops.Counts()
}

// The counts are the requests the provider bills: checked against what
// the S3 server on loopback was sent.
func TestOpsAreCounted(t *testing.T) {
	want := job.RequestCounts{Put: 1 + 1 + 1 + 5, Get: 2, List: 1}
	t.Run("mem", func(t *testing.T) {
		if got := opsSequence(t, testkit.Bucket(t, "mem://")); got != want {
			t.Errorf("counted %+v, want %+v", got, want)
		}
	})
	want.Get++ // the HEAD before the delete
	t.Run("s3", func(t *testing.T) {
		s3, _ := testkit.StartStores(t, "ops")
		b := testkit.Bucket(t, s3.BucketURL("ops"))
		counted := opsSequence(t, b)
		put, get, list := s3.Requests()
		// Less the read made without a counter.
		served := job.RequestCounts{Put: put, Get: get - 1, List: list}
		if counted != served {
			t.Errorf("counted %+v; the server was sent %+v", counted, served)
		}
		if counted != want {
			t.Errorf("counted %+v, want %+v", counted, want)
		}
	})
}
