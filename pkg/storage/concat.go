package storage

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"unicode/utf8"

	"cloud.google.com/go/storage"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"gocloud.dev/blob"
)

// ConcatOptions tune Concat.
type ConcatOptions struct {
	// Concurrency is how many requests Concat has in flight at once (part
	// copies and uploads on S3, composes on GCS, size lookups); 0 means 16.
	Concurrency int
}

// ConcatMethod is how Concat joined the sources.
type ConcatMethod string

const (
	// ConcatS3Multipart is a multipart upload whose parts S3 copies from
	// the sources (UploadPartCopy), small neighbours merged into uploaded
	// parts.
	ConcatS3Multipart ConcatMethod = "s3-multipart-copy"
	// ConcatGCSCompose is a tree of GCS composes.
	ConcatGCSCompose ConcatMethod = "gcs-compose"
	// ConcatFileCopy is a file-to-file copy in a local folder, done by the
	// kernel (copy_file_range on Linux).
	ConcatFileCopy ConcatMethod = "file-copy"
	// ConcatStream reads every source and writes it through a blob writer.
	ConcatStream ConcatMethod = "stream"
)

// ConcatStats say what Concat did, so callers and benchmarks can check
// where the bytes went.
type ConcatStats struct {
	Method  ConcatMethod
	Sources int
	Bytes   int64 // the size of dst
	// BytesCopiedServerSide are source bytes that never passed through this
	// process: copied by S3 (UploadPartCopy), composed by GCS, or copied by
	// the kernel between local files.
	BytesCopiedServerSide int64
	// BytesStreamed are source bytes this process read and wrote.
	BytesStreamed int64
	// Calls are the requests made to the store: existence checks, size
	// lookups, reads, part uploads and copies, composes, deletions of
	// intermediate objects; on a local folder, files opened.
	Calls int64
	// Parts are S3 multipart parts, in dst and any intermediate objects.
	Parts int
	// Composes are GCS compose requests.
	Composes int
	// Intermediates are temporary objects Concat made and removed: GCS
	// composites of up to 32 sources, S3 objects of up to 10,000 parts.
	Intermediates int
}

// Concat writes the concatenation of srcs, in order, to dst, and publishes
// it only when it is complete and only if dst does not exist: it returns
// ErrExists and leaves dst as it is otherwise, and after any failure
// nothing is at dst (an aborted multipart upload, deleted intermediate
// objects, a removed temp file). Sources must not change meanwhile.
// Intermediate objects and temp files are named <dst>.<hex>.tmp, which List
// leaves out; only one that the store finishes after ctx is cancelled can
// outlive Concat.
//
// The bytes move as cheaply as the store allows:
//   - S3: a multipart upload whose parts are server-side copies of the
//     sources of at least 5 MiB; smaller neighbours are read and uploaded,
//     merged into parts of at least 5 MiB (see planS3Parts);
//   - GCS: composes of up to 32 objects, in a tree for more; no byte passes
//     through this process;
//   - a local folder: the kernel copies file to file (copy_file_range)
//     into a temp file beside dst, hard-linked to dst (which fails if dst
//     exists, across processes too);
//   - any other store (mem://): each source streamed through a blob writer
//     with IfNotExist.
//
// Memory is O(len(srcs)) for the key list and the plan, plus on S3 at most
// two uploaded parts of under 10 MiB each; a local folder and GCS buffer no
// bytes; other stores stream through small buffers (the writer may keep
// more: mem:// keeps the whole object).
//
// On S3, GCS and local folders keys must be stored under their own names
// (storedVerbatim): path segments that are not empty, "." or "..", and no
// control characters.
func Concat(ctx context.Context, b *blob.Bucket, dst string, srcs []string, opts ConcatOptions) (ConcatStats, error) {
	stats := ConcatStats{Sources: len(srcs)}
	if len(srcs) == 0 {
		return stats, fmt.Errorf("concat %s: no sources", dst)
	}
	var calls atomic.Int64
	calls.Add(1)
	exists, err := b.Exists(ctx, dst)
	if err == nil && exists {
		err = ErrExists // no need to copy anything
	}
	if err != nil {
		stats.Calls = calls.Load()
		return stats, fmt.Errorf("concat %s: %w", dst, err)
	}
	limit := cmp.Or(opts.Concurrency, 16)

	var s3Client *s3.Client
	var gcsClient *storage.Client
	var dir os.FileInfo
	var run func() error
	switch {
	case b.As(&s3Client):
		stats.Method = ConcatS3Multipart
		run = func() error { return concatS3(ctx, b, s3Client, dst, srcs, awsS3Limits(), limit, &stats, &calls) }
	case b.As(&gcsClient):
		stats.Method = ConcatGCSCompose
		run = func() error { return concatGCS(ctx, b, gcsClient, dst, srcs, limit, &stats, &calls) }
	case b.As(&dir):
		stats.Method = ConcatFileCopy
		run = func() error { return concatFile(ctx, b, dst, srcs, &stats, &calls) }
	default:
		stats.Method = ConcatStream
		run = func() error { return concatStream(ctx, b, dst, srcs, &stats, &calls) }
	}
	err = checkVerbatim(dst, srcs)
	if err == nil || stats.Method == ConcatStream {
		err = run()
	}
	stats.Calls = calls.Load()
	if err != nil {
		return stats, fmt.Errorf("concat %s: %w", dst, err)
	}
	return stats, nil
}

// storedVerbatim reports whether every driver stores key under its own
// name, which Concat's native paths rely on as they name objects and files
// themselves: gocloud's drivers escape control characters, "../", "//" or
// a trailing "/" (each some of them), and a local folder cleans "." and
// ".." out of paths.
func storedVerbatim(key string) bool {
	if !utf8.ValidString(key) {
		return false
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
	}
	for _, r := range key {
		if r < 0x20 || (os.PathSeparator != '/' && strings.ContainsRune(`\<>:"|?*`, r)) {
			return false
		}
	}
	return true
}

func checkVerbatim(dst string, srcs []string) error {
	for _, k := range append([]string{dst}, srcs...) {
		if !storedVerbatim(k) {
			return fmt.Errorf("key %q is stored under an escaped name; Concat takes keys of non-empty path segments other than \".\" and \"..\", without control characters", k)
		}
	}
	return nil
}

// errProbe stops a Copy that only shows how the driver names objects.
var errProbe = errors.New("storage: a probe, not sent")

// probeCopy prepares a Copy of src to dst and stops it before anything is
// sent, showing the driver's own request: As gives the S3 and GCS clients
// but neither the bucket's name nor how a key is prefixed or escaped.
func probeCopy(ctx context.Context, b *blob.Bucket, dst, src string, look func(as func(any) bool)) error {
	err := b.Copy(ctx, dst, src, &blob.CopyOptions{BeforeCopy: func(as func(any) bool) error {
		look(as)
		return errProbe
	}})
	if errors.Is(err, errProbe) {
		return nil
	}
	if err == nil {
		return errors.New("the driver copied instead of showing its request")
	}
	return err
}

// keyPrefix is what the driver puts before key (a bucket opened with
// ?prefix=), given the name it uses for key.
func keyPrefix(native, key string) (string, error) {
	prefix, ok := strings.CutSuffix(native, key)
	if !ok {
		return "", fmt.Errorf("the store names key %q %q", key, native)
	}
	return prefix, nil
}

// tempNames name Concat's intermediate objects and temp files beside dst:
// <dst>.<hex>.tmp, which List leaves out as it does fileblob's temp files.
type tempNames struct{ dst, nonce string }

func newTempNames(dst string) tempNames {
	var nonce [6]byte
	rand.Read(nonce[:])
	return tempNames{dst: dst, nonce: hex.EncodeToString(nonce[:])}
}

func (t tempNames) name(n int) string { return fmt.Sprintf("%s.%s%06x.tmp", t.dst, t.nonce, n) }
