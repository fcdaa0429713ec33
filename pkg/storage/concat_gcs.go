package storage

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"cloud.google.com/go/storage"
	"gocloud.dev/blob"
	"gocloud.dev/blob/gcsblob"
	"golang.org/x/sync/errgroup"
	"google.golang.org/api/googleapi"

	"github.com/helios-project/infrastructure/pkg/job"
)

// gcsMaxComposeSources is how many objects one GCS compose joins.
const gcsMaxComposeSources = 32

// concatGCS composes the sources into dst on the server. Up to 32 sources
// take one compose; more are composed 32 at a time into intermediate
// objects, those again, and so on (a tree, ⌈log32 N⌉ levels: 10,000
// sources take 313 + 10 + 1 composes), the last compose creating dst only
// if it does not exist (ifGenerationMatch=0). A compose whose sources are
// all intermediates deletes them as it succeeds (a hard delete, not kept
// by soft delete); after a failure the intermediates left are deleted.
func concatGCS(ctx context.Context, b *blob.Bucket, client *storage.Client, dst string, srcs []string, limit int, stats *ConcatStats, calls *atomic.Int64) (err error) {
	bucket, prefix, err := gcsBucketOf(ctx, b, client, dst, srcs[0])
	if err != nil {
		return err
	}
	c := &gcsComposer{bucket: bucket, temps: newTempNames(prefix + dst), limit: limit, stats: stats, calls: calls}
	defer func() {
		// After a success each was the source of a compose that deleted it.
		if err != nil && len(c.made) > 0 {
			deleteIntermediates(ctx, bucket, c.made, limit, calls)
		}
	}()
	names := make([]string, len(srcs))
	for i, s := range srcs {
		names[i] = prefix + s
	}
	for level := 0; len(names) > gcsMaxComposeSources; level++ {
		if names, err = c.composeLevel(ctx, names, level); err != nil {
			return err
		}
	}
	return c.composeDst(ctx, prefix+dst, names)
}

// gcsBucketOf is the GCS bucket under b and the prefix b puts before its
// keys (a bucket opened with ?prefix=), as gcsblob's own copy request of
// src to dst names them.
func gcsBucketOf(ctx context.Context, b *blob.Bucket, client *storage.Client, dst, src string) (*storage.BucketHandle, string, error) {
	var handles *gcsblob.CopyObjectHandles
	if err := probeCopy(ctx, b, dst, src, func(as func(any) bool) { as(&handles) }); err != nil {
		return nil, "", err
	}
	if handles == nil {
		return nil, "", errors.New("gcsblob did not show its copy request")
	}
	prefix, err := keyPrefix(handles.Dst.ObjectName(), dst)
	if err != nil {
		return nil, "", err
	}
	return client.Bucket(handles.Dst.BucketName()), prefix, nil
}

// gcsComposer is one concatGCS: its composes, counted, and the
// intermediate objects they made.
type gcsComposer struct {
	bucket   *storage.BucketHandle
	temps    tempNames
	limit    int
	stats    *ConcatStats
	calls    *atomic.Int64
	composes atomic.Int64
	made     []string // intermediates
}

// composeLevel is one level of the tree: names composed 32 at a time,
// limit at once, into new intermediates, which it returns in order. The
// sources are deleted if they are intermediates themselves (level > 0).
func (c *gcsComposer) composeLevel(ctx context.Context, names []string, level int) ([]string, error) {
	groups := (len(names) + gcsMaxComposeSources - 1) / gcsMaxComposeSources
	next := make([]string, groups)
	for i := range next {
		next[i] = c.temps.name(len(c.made) + i)
	}
	c.made = append(c.made, next...)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.limit)
	for i := range next {
		// Balanced groups: 33 sources are 17 + 16, not 32 + 1.
		group := names[i*len(names)/groups : (i+1)*len(names)/groups]
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err // another failed: start no more
			}
			// Not cancelled when another fails: a compose cancelled in
			// flight can still finish on the server, after the cleanup.
			_, err := c.compose(ctx, c.bucket.Object(next[i]), group, level > 0)
			return err
		})
	}
	err := g.Wait()
	c.stats.Composes = int(c.composes.Load())
	c.stats.Intermediates = len(c.made)
	if err != nil {
		return nil, err
	}
	return next, nil
}

// composeDst is the last compose, of the remaining names (at most 32) into
// dst, only if dst does not exist (ErrExists if it does).
func (c *gcsComposer) composeDst(ctx context.Context, dst string, names []string) error {
	attrs, err := c.compose(ctx, c.bucket.Object(dst).If(storage.Conditions{DoesNotExist: true}), names, len(c.made) > 0)
	c.stats.Composes = int(c.composes.Load())
	if err != nil {
		var apiErr *googleapi.Error
		if errors.As(err, &apiErr) && apiErr.Code == http.StatusPreconditionFailed {
			return ErrExists
		}
		return err
	}
	c.stats.Bytes = attrs.Size
	c.stats.BytesCopiedServerSide = attrs.Size
	return nil
}

// compose makes target of names, in order, deleting them if they are
// intermediates; it counts the call and the compose.
func (c *gcsComposer) compose(ctx context.Context, target *storage.ObjectHandle, names []string, intermediates bool) (*storage.ObjectAttrs, error) {
	objs := make([]*storage.ObjectHandle, len(names))
	for i, name := range names {
		objs[i] = c.bucket.Object(name)
	}
	composer := target.ComposerFrom(objs...)
	composer.ContentType = contentType(target.ObjectName())
	composer.DeleteSourceObjects = intermediates
	c.calls.Add(1)
	c.composes.Add(1)
	count(ctx, job.RequestCounts{Put: 1}) // a compose is a class A operation, made by the provider's client
	attrs, err := composer.Run(ctx)
	if err != nil {
		return nil, fmt.Errorf("compose %s from %d objects, %s to %s: %w", target.ObjectName(), len(names), names[0], names[len(names)-1], err)
	}
	return attrs, nil
}

// deleteIntermediates removes Concat's intermediate objects, those a
// compose has not deleted already; with a context of its own, so a
// cancelled Concat still cleans up.
func deleteIntermediates(ctx context.Context, bucket *storage.BucketHandle, names []string, limit int, calls *atomic.Int64) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	var g errgroup.Group
	g.SetLimit(limit)
	for _, name := range names {
		g.Go(func() error {
			calls.Add(1)
			_ = bucket.Object(name).Delete(ctx) // gone already (deleted as a source) is fine
			return nil
		})
	}
	g.Wait()
}
