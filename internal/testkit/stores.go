package testkit

import (
	"testing"

	"github.com/helios-project/infrastructure/internal/awslocal"
	"github.com/helios-project/infrastructure/internal/gcplocal"
)

// StartStores starts an S3 and a GCS server on loopback, each with bucket,
// and points the clients' environment at them for the test (so the test
// cannot be parallel).
func StartStores(t testing.TB, bucket string) (*awslocal.S3, *gcplocal.GCS) {
	t.Helper()
	s3, err := awslocal.StartS3(bucket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s3.Close)
	for k, v := range awslocal.CredentialsEnv() {
		t.Setenv(k, v)
	}
	gcs, err := gcplocal.StartGCS(bucket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gcs.Close)
	for k, v := range gcs.Env() {
		t.Setenv(k, v)
	}
	return s3, gcs
}
