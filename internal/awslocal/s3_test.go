package awslocal_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strconv"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/helios-project/infrastructure/internal/awslocal"
)

// uploadStep is one part of a multipart upload in a test: bytes sent with
// UploadPart, or a copy of an object (a range of it if last >= 0).
type uploadStep struct {
	data        []byte
	copyOf      string
	first, last int64
}

func sent(data []byte) uploadStep  { return uploadStep{data: data, last: -1} }
func copied(key string) uploadStep { return uploadStep{copyOf: key, last: -1} }
func copiedRange(key string, first, last int64) uploadStep {
	return uploadStep{copyOf: key, first: first, last: last}
}

// The server does what the storage package's Concat relies on and gofakes3
// does not: UploadPartCopy, S3's minimum part size, If-None-Match: * at
// completion.
func TestMultipartRules(t *testing.T) {
	srv, err := awslocal.StartS3("b")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	client := srv.Client()
	ctx := t.Context()
	if out, err := client.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String("b")}); err != nil || len(out.Uploads) != 0 {
		t.Fatalf("uploads in a new bucket: %v, %v", out, err)
	}

	big := pattern(7<<20, 1)
	small := pattern(1<<10, 2)
	for key, data := range map[string][]byte{"src/big": big, "src/small": small, "taken": []byte("first")} {
		if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("b"), Key: aws.String(key), Body: bytes.NewReader(data)}); err != nil {
			t.Fatal(err)
		}
	}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

	for _, tc := range []struct {
		name        string
		key         string
		steps       []uploadStep
		ifNoneMatch bool
		want        []byte // content after completion, if it succeeds
		wantCode    string // error code of the failing step
	}{
		{name: "copies, a range, a small last part", key: "out/1",
			steps: []uploadStep{copied("src/big"), copiedRange("src/big", 1<<20, 7<<20-1), sent(small)},
			want:  cat(big, big[1<<20:], small)},
		{name: "a small copied last part", key: "out/2",
			steps: []uploadStep{sent(big), copied("src/small")},
			want:  cat(big, small)},
		{name: "a small part before the last", key: "out/3",
			steps:    []uploadStep{sent(small), sent(big)},
			wantCode: "EntityTooSmall"},
		{name: "a small copied part before the last", key: "out/4",
			steps:    []uploadStep{copied("src/big"), copied("src/small"), copied("src/big")},
			wantCode: "EntityTooSmall"},
		{name: "if-none-match on a new key", key: "out/5", ifNoneMatch: true,
			steps: []uploadStep{copied("src/big")},
			want:  big},
		{name: "if-none-match on a taken key", key: "taken", ifNoneMatch: true,
			steps:    []uploadStep{copied("src/big")},
			wantCode: "PreconditionFailed"},
		{name: "a missing source", key: "out/6",
			steps:    []uploadStep{copied("src/none")},
			wantCode: "NoSuchKey"},
		{name: "a range past the end", key: "out/7",
			steps:    []uploadStep{copiedRange("src/big", 0, 7<<20)},
			wantCode: "InvalidRange"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := multipart(ctx, client, tc.key, tc.steps, tc.ifNoneMatch)
			if tc.wantCode != "" {
				var ae smithy.APIError
				if !errors.As(err, &ae) || ae.ErrorCode() != tc.wantCode {
					t.Fatalf("upload: %v, want %s", err, tc.wantCode)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := read(t, client, tc.key)
			if !bytes.Equal(got, tc.want) {
				t.Errorf("%s is %d bytes, want %d (the parts joined)", tc.key, len(got), len(tc.want))
			}
		})
	}
	if got := read(t, client, "taken"); string(got) != "first" {
		t.Errorf("a refused completion changed the object: %q", got)
	}
}

// multipart runs one multipart upload of steps to key and aborts it on failure.
func multipart(ctx context.Context, client *s3.Client, key string, steps []uploadStep, ifNoneMatch bool) error {
	up, err := client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("b"), Key: aws.String(key)})
	if err != nil {
		return err
	}
	abort := func(err error) error {
		client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: aws.String("b"), Key: aws.String(key), UploadId: up.UploadId})
		return err
	}
	var done []types.CompletedPart
	for i, st := range steps {
		n := aws.Int32(int32(i + 1))
		if st.copyOf == "" {
			out, err := client.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String("b"), Key: aws.String(key), UploadId: up.UploadId,
				PartNumber: n, Body: bytes.NewReader(st.data), ContentLength: aws.Int64(int64(len(st.data)))})
			if err != nil {
				return abort(err)
			}
			done = append(done, types.CompletedPart{PartNumber: n, ETag: out.ETag})
			continue
		}
		in := &s3.UploadPartCopyInput{Bucket: aws.String("b"), Key: aws.String(key), UploadId: up.UploadId,
			PartNumber: n, CopySource: aws.String("b/" + st.copyOf)}
		if st.last >= 0 {
			in.CopySourceRange = aws.String("bytes=" + strconv.FormatInt(st.first, 10) + "-" + strconv.FormatInt(st.last, 10))
		}
		out, err := client.UploadPartCopy(ctx, in)
		if err != nil {
			return abort(err)
		}
		if out.CopyPartResult == nil || aws.ToString(out.CopyPartResult.ETag) == "" {
			return abort(errors.New("UploadPartCopy answered without an ETag"))
		}
		done = append(done, types.CompletedPart{PartNumber: n, ETag: out.CopyPartResult.ETag})
	}
	in := &s3.CompleteMultipartUploadInput{Bucket: aws.String("b"), Key: aws.String(key), UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: done}}
	if ifNoneMatch {
		in.IfNoneMatch = aws.String("*")
	}
	if _, err := client.CompleteMultipartUpload(ctx, in); err != nil {
		return abort(err)
	}
	return nil
}

func read(t *testing.T, client *s3.Client, key string) []byte {
	t.Helper()
	out, err := client.GetObject(t.Context(), &s3.GetObjectInput{Bucket: aws.String("b"), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer out.Body.Close()
	data, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// pattern is n bytes that differ from one offset and one seed to the next,
// so a misplaced range shows.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i/251) ^ byte(i%251) ^ seed
	}
	return b
}
