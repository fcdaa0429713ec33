package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"gocloud.dev/blob"
	"golang.org/x/sync/errgroup"

	"github.com/helios-project/infrastructure/pkg/job"
)

// s3Limits are the rules of S3's multipart uploads.
type s3Limits struct {
	minPart  int64 // every part but the last is at least this
	maxPart  int64 // no part is larger
	maxParts int   // parts in one upload
}

func awsS3Limits() s3Limits { return s3Limits{minPart: 5 << 20, maxPart: 5 << 30, maxParts: 10_000} }

// streamedPartsInFlight bounds the memory of a concatenation on S3: each
// uploaded part is read into a buffer of under 2·minPart (10 MiB).
const streamedPartsInFlight = 2

// piece is a byte range of one source.
type piece struct {
	src          int // index of the source
	offset, size int64
}

// s3Part is one part of a multipart upload: one piece S3 copies
// (UploadPartCopy copies one range of one object), or pieces this process
// reads and uploads (UploadPart).
type s3Part struct {
	copied bool
	pieces []piece
	size   int64
}

// planS3Parts lays out the multipart upload of the concatenation of sources
// of the given sizes. Every part but the last must be at least minPart, and
// a copied part is one range of one source, so, walking the sources in
// order, with P the bytes pending (to be read and uploaded):
//   - a source under minPart is added to the pending bytes; as soon as they
//     reach minPart they are a part (so an uploaded part is under
//     2·minPart);
//   - a source of at least minPart with nothing pending is copied whole, in
//     ranges of at most maxPart (each still at least minPart, maxPart being
//     over twice minPart);
//   - a source of at least minPart after P pending bytes lends them its
//     head, minPart−P bytes, which completes an uploaded part, and the rest
//     is copied, if the rest is at least minPart or the source is the last;
//     otherwise (a source under 2·minPart−P) it is uploaded whole with them;
//   - the last part may be small: a single whole source left pending at the
//     end is copied rather than uploaded.
//
// So of a source of at least minPart only a head after a run of small
// sources passes through the process, under minPart bytes (or the whole
// source, if under 2·minPart−P). Empty sources are skipped. Examples (MiB):
//
//	[6, 1 KiB, 1 KiB, 7, 3]: copy 6 | upload 2 KiB + 7 | copy 3
//	[1 KiB, 12, 6, 2]:       upload 1 KiB + 5−1 KiB of 12 | copy the rest of 12 | copy 6 | copy 2
//	[1, 1, 1, 1, 1, 1]:      upload 1+1+1+1+1 | copy 1
func planS3Parts(sizes []int64, lim s3Limits) []s3Part {
	last := len(sizes) - 1
	for last >= 0 && sizes[last] == 0 {
		last--
	}
	var parts []s3Part
	var pending []piece
	var pendingSize int64
	flush := func() {
		if pendingSize > 0 {
			parts = append(parts, s3Part{pieces: pending, size: pendingSize})
			pending, pendingSize = nil, 0
		}
	}
	upload := func(p piece) {
		pending = append(pending, p)
		pendingSize += p.size
		if pendingSize >= lim.minPart {
			flush()
		}
	}
	copyRange := func(src int, offset, size int64) {
		n := (size + lim.maxPart - 1) / lim.maxPart
		for i := range n {
			start, end := offset+size*i/n, offset+size*(i+1)/n
			parts = append(parts, s3Part{copied: true, pieces: []piece{{src, start, end - start}}, size: end - start})
		}
	}
	for i, size := range sizes {
		lend := lim.minPart - pendingSize
		switch {
		case size == 0:
		case size < lim.minPart:
			upload(piece{i, 0, size})
		case pendingSize == 0:
			copyRange(i, 0, size)
		case size-lend >= lim.minPart || i == last:
			upload(piece{i, 0, lend})
			copyRange(i, lend, size-lend)
		default:
			upload(piece{i, 0, size})
		}
	}
	if len(pending) == 1 && pending[0].offset == 0 && pending[0].size == sizes[pending[0].src] {
		copyRange(pending[0].src, 0, pending[0].size)
	} else {
		flush()
	}
	return parts
}

// concatS3 runs the plan of planS3Parts as one multipart upload to dst,
// aborted on failure. It is completed with If-None-Match: *, which S3
// honours atomically, so it never replaces an object; an S3-compatible
// store that ignores the header would let a writer racing between Concat's
// existence check and the completion be replaced. A plan of more parts than
// an upload takes (over 10,000 sources, or sources over 5 GiB) is uploaded
// in groups to intermediate objects, then copied from those into dst, and
// they are deleted.
func concatS3(ctx context.Context, b *blob.Bucket, client *s3.Client, dst string, srcs []string, lim s3Limits, limit int, stats *ConcatStats, calls *atomic.Int64) error {
	var probe *s3.CopyObjectInput
	if err := probeCopy(ctx, b, dst, srcs[0], func(as func(any) bool) { as(&probe) }); err != nil {
		return err
	}
	if probe == nil {
		return errors.New("s3blob did not show its copy request")
	}
	prefix, err := keyPrefix(aws.ToString(probe.Key), dst)
	if err != nil {
		return err
	}
	sizes, err := sourceSizes(ctx, b, srcs, limit, calls)
	if err != nil {
		return err
	}
	var total int64
	for _, s := range sizes {
		total += s
	}
	if total == 0 { // no parts to upload
		stats.Method = ConcatStream
		return concatStream(ctx, b, dst, srcs, stats, calls)
	}
	keys := make([]string, len(srcs))
	for i, s := range srcs {
		keys[i] = prefix + s
	}
	checksum := types.ChecksumAlgorithmCrc32 // as the transfer manager does
	if client.Options().RequestChecksumCalculation == aws.RequestChecksumCalculationWhenRequired {
		checksum = "" // S3-compatible stores that take no checksum headers
	}
	u := &s3Uploader{client: client, bucket: aws.ToString(probe.Bucket), limits: lim, checksum: checksum,
		limit: limit, buffers: make(chan []byte, streamedPartsInFlight), calls: calls}
	for range streamedPartsInFlight {
		u.buffers <- nil // allocated on first use
	}
	plan := planS3Parts(sizes, lim)
	if len(plan) <= lim.maxParts {
		err = u.upload(ctx, prefix+dst, keys, sizes, plan, true, true)
	} else {
		err = u.uploadGrouped(ctx, prefix+dst, keys, sizes, plan)
	}
	stats.Parts = int(u.parts.Load())
	stats.Intermediates = int(u.intermediates.Load())
	stats.BytesStreamed = u.streamed.Load()
	stats.BytesCopiedServerSide = u.copied.Load()
	if err != nil {
		return err
	}
	stats.Bytes = total
	return nil
}

// sourceSizes returns the size of each source. Sources in one folder (a
// job's chunks) are sized from its listing, 1,000 keys a request, rather
// than a HEAD each; any the listing does not show are asked for one by one.
func sourceSizes(ctx context.Context, b *blob.Bucket, srcs []string, limit int, calls *atomic.Int64) ([]int64, error) {
	sizes := make([]int64, len(srcs))
	known := make([]bool, len(srcs))
	if dir := commonFolder(srcs); dir != "" {
		at := make(map[string][]int, len(srcs))
		last := ""
		for i, s := range srcs {
			at[s] = append(at[s], i)
			last = max(last, s)
		}
		// Keys are listed in order: stop past the last source, or after a
		// folder much larger than the sources.
		it := b.List(&blob.ListOptions{Prefix: dir})
		calls.Add(1)
		for seen := 1; seen <= 2*len(at)+1000; seen++ {
			obj, err := it.Next(ctx)
			if err != nil || obj.Key > last {
				break // io.EOF; on an error the HEADs below tell
			}
			if seen%1000 == 0 {
				calls.Add(1)
			}
			for _, i := range at[obj.Key] {
				sizes[i], known[i] = obj.Size, true
			}
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(limit)
	for i, src := range srcs {
		if known[i] {
			continue
		}
		g.Go(func() error {
			calls.Add(1)
			attrs, err := b.Attributes(gctx, src)
			if err != nil {
				return fmt.Errorf("size of %s: %w", src, err)
			}
			sizes[i] = attrs.Size
			return nil
		})
	}
	return sizes, g.Wait()
}

// commonFolder is the longest folder ("a/b/") every key is in; "" if none.
func commonFolder(keys []string) string {
	prefix := keys[0]
	for _, k := range keys[1:] {
		n := 0
		for n < len(prefix) && n < len(k) && prefix[n] == k[n] {
			n++
		}
		prefix = prefix[:n]
	}
	for len(prefix) > 0 && prefix[len(prefix)-1] != '/' {
		prefix = prefix[:len(prefix)-1]
	}
	return prefix
}

// s3Uploader runs multipart uploads of planned parts.
type s3Uploader struct {
	client   *s3.Client
	bucket   string
	limits   s3Limits
	checksum types.ChecksumAlgorithm
	limit    int
	buffers  chan []byte // one per uploaded part in flight
	calls    *atomic.Int64

	parts, intermediates, streamed, copied atomic.Int64
}

// upload writes the parts, pieces of the objects keys of sizes, to key.
// fromSources says the pieces are the caller's sources, whose bytes the
// stats count.
func (u *s3Uploader) upload(ctx context.Context, key string, keys []string, sizes []int64, plan []s3Part, ifNoneMatch, fromSources bool) (err error) {
	u.calls.Add(1)
	count(ctx, job.RequestCounts{Put: 1}) // the provider's client, not the bucket
	created, err := u.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket: &u.bucket, Key: &key, ContentType: aws.String(contentType(key)), ChecksumAlgorithm: u.checksum})
	if err != nil {
		return fmt.Errorf("start the upload of %s: %w", key, err)
	}
	defer func() {
		if err != nil {
			u.abort(ctx, key, created.UploadId)
		}
	}()
	done := make([]types.CompletedPart, len(plan))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(u.limit)
	for i, p := range plan {
		num := int32(i + 1)
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err // another failed: start no more
			}
			// Not cancelled when another fails: a part cancelled in flight
			// can still land after the abort, and keep its storage.
			var err error
			done[i], err = u.part(ctx, key, created.UploadId, num, keys, sizes, p, fromSources)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	in := &s3.CompleteMultipartUploadInput{Bucket: &u.bucket, Key: &key, UploadId: created.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: done}}
	if ifNoneMatch {
		in.IfNoneMatch = aws.String("*")
	}
	u.calls.Add(1)
	count(ctx, job.RequestCounts{Put: 1}) // the provider's client, not the bucket
	if _, err := u.client.CompleteMultipartUpload(ctx, in); err != nil {
		if preconditionFailed(err) {
			return ErrExists
		}
		return fmt.Errorf("complete the upload of %s: %w", key, err)
	}
	u.parts.Add(int64(len(plan)))
	return nil
}

// uploadGrouped uploads a plan of too many parts: groups of at most
// maxParts parts to intermediate objects (every part of the plan but the
// last is at least minPart, so each group is a valid upload and each
// intermediate at least minPart), then those, copied, to key.
func (u *s3Uploader) uploadGrouped(ctx context.Context, key string, keys []string, sizes []int64, plan []s3Part) error {
	groups := (len(plan) + u.limits.maxParts - 1) / u.limits.maxParts
	temps := newTempNames(key)
	tempKeys := make([]string, groups)
	tempSizes := make([]int64, groups)
	defer u.deleteObjects(ctx, tempKeys)
	for i := range groups {
		group := plan[i*len(plan)/groups : (i+1)*len(plan)/groups]
		for _, p := range group {
			tempSizes[i] += p.size
		}
		u.intermediates.Add(1)
		tempKeys[i] = temps.name(i) // deleted even if it fails: it may complete all the same
		if err := u.upload(ctx, tempKeys[i], keys, sizes, group, false, true); err != nil {
			return err
		}
	}
	top := planS3Parts(tempSizes, u.limits)
	if len(top) > u.limits.maxParts {
		return fmt.Errorf("%d intermediate objects still take %d parts, over %d", groups, len(top), u.limits.maxParts)
	}
	return u.upload(ctx, key, tempKeys, tempSizes, top, true, false)
}

// part uploads or copies one part.
func (u *s3Uploader) part(ctx context.Context, key string, uploadID *string, num int32, keys []string, sizes []int64, p s3Part, fromSources bool) (types.CompletedPart, error) {
	if p.copied {
		pc := p.pieces[0]
		in := &s3.UploadPartCopyInput{Bucket: &u.bucket, Key: &key, UploadId: uploadID, PartNumber: &num,
			CopySource: aws.String(url.QueryEscape(u.bucket + "/" + keys[pc.src]))} // as s3blob's Copy
		if pc.offset != 0 || pc.size != sizes[pc.src] {
			in.CopySourceRange = aws.String(fmt.Sprintf("bytes=%d-%d", pc.offset, pc.offset+pc.size-1))
		}
		u.calls.Add(1)
		count(ctx, job.RequestCounts{Put: 1}) // the provider's client, not the bucket
		out, err := u.client.UploadPartCopy(ctx, in)
		if err != nil {
			return types.CompletedPart{}, fmt.Errorf("copy %s (bytes %d+%d) into part %d: %w", keys[pc.src], pc.offset, pc.size, num, err)
		}
		if out.CopyPartResult == nil {
			return types.CompletedPart{}, fmt.Errorf("copy %s into part %d: no CopyPartResult", keys[pc.src], num)
		}
		if fromSources {
			u.copied.Add(pc.size)
		}
		return types.CompletedPart{PartNumber: &num, ETag: out.CopyPartResult.ETag, ChecksumCRC32: out.CopyPartResult.ChecksumCRC32}, nil
	}

	buf := <-u.buffers
	if int64(cap(buf)) < p.size {
		// Room for any uploaded part but a small last one.
		buf = make([]byte, p.size, max(p.size, min(p.size*2, 2*u.limits.minPart)))
	}
	defer func() { u.buffers <- buf }()
	data := buf[:p.size]
	if err := u.read(ctx, keys, p.pieces, data); err != nil {
		return types.CompletedPart{}, err
	}
	if fromSources {
		u.streamed.Add(p.size)
	}
	u.calls.Add(1)
	count(ctx, job.RequestCounts{Put: 1}) // the provider's client, not the bucket
	out, err := u.client.UploadPart(ctx, &s3.UploadPartInput{Bucket: &u.bucket, Key: &key, UploadId: uploadID, PartNumber: &num,
		Body: bytes.NewReader(data), ContentLength: &p.size, ChecksumAlgorithm: u.checksum})
	if err != nil {
		return types.CompletedPart{}, fmt.Errorf("upload part %d of %s: %w", num, key, err)
	}
	return types.CompletedPart{PartNumber: &num, ETag: out.ETag, ChecksumCRC32: out.ChecksumCRC32}, nil
}

// read fills data with the pieces, several at a time: an uploaded part may
// gather hundreds of small sources.
func (u *s3Uploader) read(ctx context.Context, keys []string, pieces []piece, data []byte) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(u.limit)
	var at int64
	for _, pc := range pieces {
		dst := data[at : at+pc.size]
		at += pc.size
		g.Go(func() error {
			u.calls.Add(1)
			count(gctx, job.RequestCounts{Get: 1}) // the provider's client, not the bucket
			out, err := u.client.GetObject(gctx, &s3.GetObjectInput{Bucket: &u.bucket, Key: &keys[pc.src],
				Range: aws.String(fmt.Sprintf("bytes=%d-%d", pc.offset, pc.offset+pc.size-1))}, quietChecksums)
			if err != nil {
				return fmt.Errorf("read %s: %w", keys[pc.src], err)
			}
			defer out.Body.Close()
			if _, err := io.ReadFull(out.Body, dst); err != nil {
				return fmt.Errorf("read %s (bytes %d+%d): %w", keys[pc.src], pc.offset, pc.size, err)
			}
			return nil
		})
	}
	return g.Wait()
}

// quietChecksums keeps a read of an object stored without a checksum from
// logging that it cannot check one: a line per small source.
func quietChecksums(o *s3.Options) { o.DisableLogOutputChecksumValidationSkipped = true }

// abort abandons an upload, with a context of its own so a cancelled
// Concat still leaves no parts behind.
func (u *s3Uploader) abort(ctx context.Context, key string, uploadID *string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	u.calls.Add(1)
	_, _ = u.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &u.bucket, Key: &key, UploadId: uploadID})
}

func (u *s3Uploader) deleteObjects(ctx context.Context, keys []string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	for _, k := range keys {
		if k != "" {
			u.calls.Add(1)
			_, _ = u.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &u.bucket, Key: &k})
		}
	}
}

// preconditionFailed reports whether S3 refused a conditional write
// because the object exists.
func preconditionFailed(err error) bool {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode() == "PreconditionFailed" {
		return true
	}
	var respErr *awshttp.ResponseError
	return errors.As(err, &respErr) && respErr.HTTPStatusCode() == http.StatusPreconditionFailed
}
