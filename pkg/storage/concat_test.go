package storage_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	gcstorage "cloud.google.com/go/storage"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"gocloud.dev/blob"

	"github.com/helios-project/infrastructure/internal/awslocal"
	"github.com/helios-project/infrastructure/internal/testkit"
	"github.com/helios-project/infrastructure/pkg/storage"
)

const (
	kib = 1 << 10
	mib = 1 << 20
)

// concatCase is a concatenation every store must get right, and what S3
// must do with it.
type concatCase struct {
	name  string
	sizes []int64
	// On S3, the source bytes that pass through the process, and the parts;
	// -1 to leave unchecked.
	s3Streamed int64
	s3Parts    int
}

func concatCases() []concatCase {
	return []concatCase{
		// A lone source is copied, however small: the last part may be.
		{"one source", []int64{3 * kib}, 0, 1},
		// The stitcher's case: a small init, fragments of at least 5 MiB,
		// a short last one. Only the head of the first fragment that
		// completes a part with the init is read; the rest is copied.
		{"init and fragments", []int64{1 * kib, 12 * mib, 6 * mib, 2 * mib}, 5 * mib, 4},
		// Large sources only (a small last is allowed): all copied.
		{"large sources", []int64{6 * mib, 5 * mib, 8 * mib, 1 * kib}, 0, 4},
		// Small sources between two large ones: the 7 MiB one cannot lend
		// 5 MiB less 2 KiB and keep 5 MiB, so it is uploaded with them.
		{"around 5 MiB", []int64{6 * mib, 1 * kib, 1 * kib, 7 * mib, 3 * mib}, 7*mib + 2*kib, 3},
		// Small sources merged into a part of 5 MiB, then a small last part.
		{"all small", repeat(330, 16*kib), 330 * 16 * kib, 2},
		{"over 32 sources", ramp(40, 1*kib, 3*kib), -1, 1},
		{"empty sources", []int64{0, 1 * kib, 0, 2 * kib, 0}, 3 * kib, 1},
		{"all empty", []int64{0, 0}, 0, 0},
		{"many small sources", ramp(2000, 1, 4*kib), -1, -1},
	}
}

// Every store concatenates, publishes only a complete object, never
// replaces one, and leaves nothing behind when it fails.
func TestConcat(t *testing.T) {
	s3srv, gcs := testkit.StartStores(t, "concat")
	drivers := map[string]struct {
		url    string
		method storage.ConcatMethod
	}{
		"file": {t.TempDir(), storage.ConcatFileCopy},
		"mem":  {"mem://", storage.ConcatStream},
		"s3":   {s3srv.BucketURL("concat"), storage.ConcatS3Multipart},
		"gcs":  {gcs.BucketURL("concat"), storage.ConcatGCSCompose},
	}
	for name, d := range drivers {
		t.Run(name, func(t *testing.T) {
			b, err := storage.Open(t.Context(), d.url)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			for i, tc := range concatCases() {
				switch {
				case raceDetector && len(tc.sizes) > 1000:
					// Enough to race; the fake GCS server's lookups scan the
					// bucket, which under the race detector takes minutes.
					tc.sizes = tc.sizes[:300]
				case name == "gcs" && len(tc.sizes) > 1100:
					// Still three levels of composes (1,100 = 35·32 − 20); 2,000
					// take half a minute on the fake.
					tc.sizes = tc.sizes[:1100]
				}
				t.Run(tc.name, func(t *testing.T) {
					if testing.Short() && len(tc.sizes) > 400 {
						t.Skip("many sources")
					}
					job := fmt.Sprintf("renders/j%d/", i)
					srcs, want := putSources(t, b, job+"chunks/", tc.sizes)
					dst := job + "output.mp4"
					var stats storage.ConcatStats
					start := time.Now()
					peak := peakHeap(func() { stats, err = storage.Concat(t.Context(), b, dst, srcs, storage.ConcatOptions{}) })
					took := time.Since(start)
					if err != nil {
						t.Fatalf("Concat: %v", err)
					}
					checkObject(t, b, dst, want)
					if stats.Bytes != int64(len(want)) || stats.BytesStreamed+stats.BytesCopiedServerSide != stats.Bytes {
						t.Errorf("stats %+v for %d bytes", stats, len(want))
					}
					if stats.Method != d.method && !(name == "s3" && len(want) == 0) {
						t.Errorf("method %s, want %s", stats.Method, d.method)
					}
					if name == "s3" {
						if tc.s3Streamed >= 0 && stats.BytesStreamed != tc.s3Streamed {
							t.Errorf("%d bytes streamed through the process, want %d (%+v)", stats.BytesStreamed, tc.s3Streamed, stats)
						}
						if tc.s3Parts >= 0 && stats.Parts != tc.s3Parts {
							t.Errorf("%d parts, want %d", stats.Parts, tc.s3Parts)
						}
					}
					if name == "gcs" && stats.BytesStreamed != 0 {
						t.Errorf("%d bytes streamed through the process on GCS", stats.BytesStreamed)
					}
					t.Logf("%d sources, %d bytes in %v: %+v; heap grew at most %.1f MiB", len(srcs), len(want), took.Round(time.Millisecond), stats, float64(peak)/mib)
					// Many small sources cost their keys, not a buffer each (the
					// heap includes the test servers, which keep objects in memory).
					if len(srcs) >= 1000 && peak > 64*mib {
						t.Errorf("heap grew by %.1f MiB during Concat of %d sources", float64(peak)/mib, len(srcs))
					}
					checkNoLeftovers(t, b, s3srv, job, append(srcs, dst))

					// Never replaced: a second Concat is refused and changes nothing.
					_, err := storage.Concat(t.Context(), b, dst, srcs[:1], storage.ConcatOptions{})
					if !errors.Is(err, storage.ErrExists) {
						t.Errorf("Concat onto an existing object: %v, want ErrExists", err)
					}
					checkObject(t, b, dst, want)
				})
			}
			t.Run("missing source", func(t *testing.T) {
				// Over 32, so on GCS a compose of intermediates fails while
				// others have succeeded.
				sizes := append([]int64{6 * mib, 1 * kib, 40 * kib, 7 * mib}, ramp(36, 1*kib, 2*kib)...)
				srcs, _ := putSources(t, b, "renders/m/chunks/", sizes)
				for _, missing := range []int{0, 2, len(srcs)} {
					with := slices.Insert(slices.Clone(srcs), missing, "renders/m/chunks/none.mp4")
					if _, err := storage.Concat(t.Context(), b, "renders/m/output.mp4", with, storage.ConcatOptions{}); err == nil {
						t.Fatalf("Concat with a missing source (at %d) succeeded", missing)
					} else if !strings.Contains(err.Error(), "none.mp4") && name != "gcs" {
						t.Errorf("the error does not name the missing source: %v", err)
					}
					checkNoLeftovers(t, b, s3srv, "renders/m/", srcs)
				}
			})
			t.Run("racing", func(t *testing.T) {
				// Stitchers racing to publish one output: one wins, the others
				// are refused, and the output is the winner's whole.
				const racers = 4
				srcs := make([][]string, racers)
				want := make([][]byte, racers)
				var keys []string
				for r := range racers {
					srcs[r], want[r] = putSources(t, b, fmt.Sprintf("renders/r/chunks/%d-", r), []int64{6 * mib, 2*kib + int64(r)})
					keys = append(keys, srcs[r]...)
				}
				var mu sync.Mutex
				var winners []int
				var wg sync.WaitGroup
				for r := range racers {
					wg.Go(func() {
						_, err := storage.Concat(t.Context(), b, "renders/r/output.mp4", srcs[r], storage.ConcatOptions{})
						switch {
						case err == nil:
							mu.Lock()
							winners = append(winners, r)
							mu.Unlock()
						case !errors.Is(err, storage.ErrExists):
							t.Errorf("racing Concat: %v", err)
						}
					})
				}
				wg.Wait()
				if len(winners) != 1 {
					t.Fatalf("racers %v won, want one", winners)
				}
				checkObject(t, b, "renders/r/output.mp4", want[winners[0]])
				checkNoLeftovers(t, b, s3srv, "renders/r/", append(keys, "renders/r/output.mp4"))
			})
			t.Run("cancelled", func(t *testing.T) {
				srcs, _ := putSources(t, b, "renders/c/chunks/", ramp(40, 1*kib, 8*kib))
				ctx, cancel := context.WithCancel(t.Context())
				cancel()
				if _, err := storage.Concat(ctx, b, "renders/c/output.mp4", srcs, storage.ConcatOptions{}); err == nil {
					t.Fatal("Concat with a cancelled context succeeded")
				}
				checkNoLeftovers(t, b, s3srv, "renders/c/", srcs)
			})
			t.Run("no sources", func(t *testing.T) {
				if _, err := storage.Concat(t.Context(), b, "renders/n/output.mp4", nil, storage.ConcatOptions{}); err == nil {
					t.Error("Concat of no sources succeeded")
				}
			})
		})
	}
}

// putSources writes sources of the given sizes under prefix and returns
// their keys and their concatenation.
func putSources(t *testing.T, b *blob.Bucket, prefix string, sizes []int64) ([]string, []byte) {
	t.Helper()
	var all []byte
	keys := make([]string, len(sizes))
	for i, n := range sizes {
		keys[i] = fmt.Sprintf("%s%06d.m4s", prefix, i)
		data := pattern(n, byte(i))
		if err := b.WriteAll(t.Context(), keys[i], data, &blob.WriterOptions{BeforeWrite: oneRequest}); err != nil {
			t.Fatal(err)
		}
		all = append(all, data...)
	}
	return keys, all
}

// oneRequest uploads to GCS in one request, without the 16 MiB buffer of
// a chunked upload (2,000 of those are slow).
func oneRequest(as func(any) bool) error {
	var w *gcstorage.Writer
	if as(&w) {
		w.ChunkSize = 0
	}
	return nil
}

// pattern is n bytes of a random table, starting at an offset that
// depends on seed: different from one source and one offset to the next,
// so a misplaced range shows. Copied, not computed byte by byte, which the
// race detector makes slow.
func pattern(n int64, seed byte) []byte {
	b := make([]byte, n)
	start := int(seed) * 4099 % len(patternTable)
	for at := 0; at < len(b); start = 0 {
		at += copy(b[at:], patternTable[start:])
	}
	return b
}

// patternTable's length is prime, so its offsets in a long pattern keep
// shifting.
var patternTable = func() []byte {
	t := make([]byte, 1<<20-3)
	rand.NewChaCha8([32]byte{1}).Read(t)
	return t
}()

func repeat(n int, size int64) []int64 { return slices.Repeat([]int64{size}, n) }

// ramp is n sizes from lo to hi.
func ramp(n int, lo, hi int64) []int64 {
	s := make([]int64, n)
	for i := range s {
		s[i] = lo + (hi-lo)*int64(i)/int64(max(n-1, 1))
	}
	return s
}

func checkObject(t *testing.T, b *blob.Bucket, key string, want []byte) {
	t.Helper()
	got, err := b.ReadAll(t.Context(), key)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	if !bytes.Equal(got, want) {
		at := 0
		for at < min(len(got), len(want)) && got[at] == want[at] {
			at++
		}
		t.Fatalf("%s is %d bytes, want %d; they differ from byte %d", key, len(got), len(want), at)
	}
}

// checkNoLeftovers checks that only the keys are under prefix (no temp
// file, no intermediate object) and, on S3, that no multipart upload is
// left open.
func checkNoLeftovers(t *testing.T, b *blob.Bucket, s3srv *awslocal.S3, prefix string, keys []string) {
	t.Helper()
	var found []string
	it := b.List(&blob.ListOptions{Prefix: prefix}) // not storage.List, which hides temp files
	for {
		obj, err := it.Next(t.Context())
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		found = append(found, obj.Key)
	}
	want := slices.Sorted(slices.Values(keys))
	if !slices.Equal(found, want) {
		n := len(found)
		extra := slices.DeleteFunc(found, func(k string) bool { return slices.Contains(want, k) })
		t.Errorf("under %s: %d keys, want %d; not expected: %v", prefix, n, len(want), extra)
	}
	var client *s3.Client
	if b.As(&client) {
		out, err := client.ListMultipartUploads(t.Context(), &s3.ListMultipartUploadsInput{Bucket: aws.String("concat"), Prefix: aws.String(prefix)})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Uploads) > 0 {
			t.Errorf("%d multipart uploads left open under %s", len(out.Uploads), prefix)
		}
	}
}

// peakHeap runs f and returns how much the heap grew at most meanwhile,
// sampled every millisecond (a shorter peak can be missed). The collector
// runs when garbage reaches a tenth of the live heap, rather than all of
// it, so the figure is about what f keeps, not the collector's pace.
func peakHeap(f func()) uint64 {
	defer debug.SetGCPercent(debug.SetGCPercent(10))
	var m runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m)
	base, peak := m.HeapAlloc, m.HeapAlloc
	var mu sync.Mutex
	sample := func() {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		mu.Lock()
		peak = max(peak, m.HeapAlloc)
		mu.Unlock()
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				sample()
			}
		}
	})
	f()
	close(done)
	wg.Wait()
	sample()
	return peak - base
}
