package storage

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"gocloud.dev/blob"

	"github.com/helios-project/infrastructure/internal/awslocal"
)

// Sizes in these plans are bytes against small limits, to stay readable:
// parts of at least 5, at most 12.
var smallLimits = s3Limits{minPart: 5, maxPart: 12, maxParts: 100}

func TestPlanS3Parts(t *testing.T) {
	for _, tc := range []struct {
		sizes []int64
		want  string // c: a copied part, u(…): an uploaded one; src@offset+size for a range
	}{
		{[]int64{6, 1, 1, 7, 3}, "c0 u(1 2 3) c4"},
		{[]int64{1, 12, 6, 2}, "u(0 1@0+4) c1@4+8 c2 c3"},
		{[]int64{6, 5, 8, 1}, "c0 c1 c2 c3"},
		{[]int64{1, 1, 1, 1, 1, 1}, "u(0 1 2 3 4) c5"},
		{[]int64{4, 4, 4}, "u(0 1) c2"},
		{[]int64{2, 2}, "u(0 1)"},
		{[]int64{3}, "c0"},
		{[]int64{0, 3, 0}, "c1"},
		{[]int64{0, 0}, ""},
		{[]int64{1, 9}, "u(0 1@0+4) c1@4+5"},
		{[]int64{1, 6}, "u(0 1@0+4) c1@4+2"}, // the last part may be small
		{[]int64{1, 6, 1}, "u(0 1) c2"},      // 6 cannot lend 4 and keep 5
		{[]int64{30}, "c0@0+10 c0@10+10 c0@20+10"},
		{[]int64{1, 30}, "u(0 1@0+4) c1@4+8 c1@12+9 c1@21+9"},
	} {
		if got := formatPlan(planS3Parts(tc.sizes, smallLimits), tc.sizes); got != tc.want {
			t.Errorf("plan of %v = %q, want %q", tc.sizes, got, tc.want)
		}
	}
}

// Whatever the sizes, a plan follows S3's rules, covers every byte once in
// order, and keeps uploaded parts small.
func TestPlanS3PartsRules(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 5000 {
		sizes := make([]int64, 1+rng.IntN(12))
		for i := range sizes {
			switch rng.IntN(4) {
			case 0:
				sizes[i] = 0
			case 1:
				sizes[i] = 1 + rng.Int64N(4) // under minPart
			default:
				sizes[i] = 5 + rng.Int64N(30) // up to well over maxPart
			}
		}
		plan := planS3Parts(sizes, smallLimits)
		var next piece // the byte the plan must cover next
		for i, p := range plan {
			last := i == len(plan)-1
			var size int64
			for _, pc := range p.pieces {
				for next.src < len(sizes) && next.offset == sizes[next.src] {
					next = piece{src: next.src + 1}
				}
				if pc.src != next.src || pc.offset != next.offset || pc.size <= 0 {
					t.Fatalf("plan of %v: part %d has %+v where %+v was next: %s", sizes, i, pc, next, formatPlan(plan, sizes))
				}
				next.offset += pc.size
				size += pc.size
			}
			switch {
			case size != p.size:
				t.Fatalf("plan of %v: part %d says %d bytes, has %d", sizes, i, p.size, size)
			case !last && size < smallLimits.minPart, size > smallLimits.maxPart:
				t.Fatalf("plan of %v: part %d of %d bytes: %s", sizes, i, size, formatPlan(plan, sizes))
			case p.copied && len(p.pieces) != 1:
				t.Fatalf("plan of %v: copied part %d has %d pieces", sizes, i, len(p.pieces))
			case !p.copied && size >= 2*smallLimits.minPart:
				t.Fatalf("plan of %v: uploaded part %d of %d bytes", sizes, i, size)
			}
		}
		for next.src < len(sizes) && next.offset == sizes[next.src] {
			next = piece{src: next.src + 1}
		}
		if next.src != len(sizes) {
			t.Fatalf("plan of %v stops at %+v: %s", sizes, next, formatPlan(plan, sizes))
		}
	}
}

func formatPlan(plan []s3Part, sizes []int64) string {
	format := func(pc piece) string {
		if pc.offset == 0 && pc.size == sizes[pc.src] {
			return fmt.Sprint(pc.src)
		}
		return fmt.Sprintf("%d@%d+%d", pc.src, pc.offset, pc.size)
	}
	var parts []string
	for _, p := range plan {
		if p.copied {
			parts = append(parts, "c"+format(p.pieces[0]))
			continue
		}
		var pieces []string
		for _, pc := range p.pieces {
			pieces = append(pieces, format(pc))
		}
		parts = append(parts, "u("+strings.Join(pieces, " ")+")")
	}
	return strings.Join(parts, " ")
}

// On the test server, a plan S3 would refuse fails at completion and the
// upload is aborted; plans of ranges and of more parts than an upload takes
// come out whole.
func TestConcatS3Uploads(t *testing.T) {
	srv, err := awslocal.StartS3("internal")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	for k, v := range awslocal.CredentialsEnv() {
		t.Setenv(k, v)
	}
	b, err := Open(t.Context(), srv.BucketURL("internal"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	client := srv.Client()
	put := func(prefix string, sizes ...int64) ([]string, []byte) {
		var keys []string
		var all []byte
		for i, n := range sizes {
			data := bytes.Repeat([]byte{byte(i + 1)}, int(n))
			data[0] = 0xff // a misplaced range shows
			keys = append(keys, fmt.Sprintf("%s%02d.m4s", prefix, i))
			if err := b.WriteAll(t.Context(), keys[len(keys)-1], data, nil); err != nil {
				t.Fatal(err)
			}
			all = append(all, data...)
		}
		return keys, all
	}
	newUploader := func(lim s3Limits) *s3Uploader {
		u := &s3Uploader{client: client, bucket: "internal", limits: lim, limit: 4, buffers: make(chan []byte, 1), calls: new(atomic.Int64)}
		u.buffers <- nil
		return u
	}
	openUploads := func() int {
		out, err := client.ListMultipartUploads(t.Context(), &s3.ListMultipartUploadsInput{Bucket: aws.String("internal")})
		if err != nil {
			t.Fatal(err)
		}
		return len(out.Uploads)
	}

	t.Run("a small part before the last", func(t *testing.T) {
		keys, _ := put("bad/", 1<<10, 6<<20)
		sizes := []int64{1 << 10, 6 << 20}
		bad := []s3Part{{pieces: []piece{{0, 0, 1 << 10}}, size: 1 << 10}, {copied: true, pieces: []piece{{1, 0, 6 << 20}}, size: 6 << 20}}
		err := newUploader(awsS3Limits()).upload(t.Context(), "bad/out.mp4", keys, sizes, bad, true, true)
		if err == nil || !strings.Contains(err.Error(), "EntityTooSmall") {
			t.Fatalf("upload of a 1 KiB part before a 6 MiB one: %v, want EntityTooSmall", err)
		}
		if n := openUploads(); n != 0 {
			t.Errorf("%d uploads left open", n)
		}
		if ok, _ := b.Exists(t.Context(), "bad/out.mp4"); ok {
			t.Error("the refused upload left an object")
		}
	})

	for _, tc := range []struct {
		name             string
		limits           s3Limits
		sizes            []int64
		parts, interims  int
		streamed, copied int64
	}{
		{"ranges of a large source", s3Limits{minPart: 5 << 20, maxPart: 11 << 20, maxParts: 10_000},
			[]int64{1 << 10, 28 << 20}, 4, 0, 5 << 20, 23<<20 + 1<<10},
		{"more parts than an upload takes", s3Limits{minPart: 5 << 20, maxPart: 5 << 30, maxParts: 3},
			[]int64{6 << 20, 6 << 20, 6 << 20, 6 << 20, 1 << 10}, 5 + 2, 2, 0, 24<<20 + 1<<10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prefix := strings.ReplaceAll(tc.name, " ", "-") + "/"
			keys, want := put(prefix+"chunks/", tc.sizes...)
			var stats ConcatStats
			err := concatS3(t.Context(), b, client, prefix+"out.mp4", keys, tc.limits, 4, &stats, new(atomic.Int64))
			if err != nil {
				t.Fatal(err)
			}
			got, err := b.ReadAll(t.Context(), prefix+"out.mp4")
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("out.mp4: %d bytes, want %d (%v)", len(got), len(want), err)
			}
			if stats.Parts != tc.parts || stats.Intermediates != tc.interims || stats.BytesStreamed != tc.streamed || stats.BytesCopiedServerSide != tc.copied {
				t.Errorf("stats %+v, want %d parts, %d intermediates, %d bytes streamed, %d copied", stats, tc.parts, tc.interims, tc.streamed, tc.copied)
			}
			var left []string // not List, which hides intermediates
			for it := b.List(&blob.ListOptions{Prefix: prefix}); ; {
				obj, err := it.Next(t.Context())
				if err != nil {
					break
				}
				left = append(left, obj.Key)
			}
			if len(left) != len(keys)+1 {
				t.Errorf("under %s: %v, want the sources and out.mp4", prefix, left)
			}
			if n := openUploads(); n != 0 {
				t.Errorf("%d uploads left open", n)
			}
		})
	}
}
