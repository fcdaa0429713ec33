package storage_test

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"testing"
	"time"

	"gocloud.dev/blob"

	"github.com/helios-project/infrastructure/pkg/storage"
)

// envStraceChild names the folder TestConcatCopyFileRange's child process
// concatenates in.
const envStraceChild = "HELIOS_TEST_CONCAT_UNDER_STRACE"

// On Linux the kernel copies a local folder's bytes: a concatenation run
// under strace makes copy_file_range calls that add up to all of them.
func TestConcatCopyFileRange(t *testing.T) {
	if dir := os.Getenv(envStraceChild); dir != "" {
		concatFolder(t, dir)
		return
	}
	if runtime.GOOS != "linux" {
		t.Skip("copy_file_range is Linux's")
	}
	strace, err := exec.LookPath("strace")
	if err != nil {
		t.Skip("strace is not installed")
	}
	dir := t.TempDir()
	var want []byte
	for i, size := range []int{3 * mib, 1 * kib, 5 * mib} {
		data := pattern(int64(size), byte(i))
		want = append(want, data...)
		path := filepath.Join(dir, "renders", "j", "chunks", fmt.Sprintf("%06d.m4s", i))
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	trace := filepath.Join(t.TempDir(), "trace")
	cmd := exec.Command(strace, "-f", "-e", "trace=copy_file_range", "-o", trace,
		os.Args[0], "-test.run=^TestConcatCopyFileRange$", "-test.count=1")
	cmd.Env = append(os.Environ(), envStraceChild+"="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		if bytes.Contains(out, []byte("ptrace")) {
			t.Skipf("strace cannot trace here: %s", out)
		}
		t.Fatalf("%v: %s", err, out)
	}
	got, err := os.ReadFile(filepath.Join(dir, "renders", "j", "output.mp4"))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("output: %d bytes, want %d (%v)", len(got), len(want), err)
	}
	log, err := os.ReadFile(trace)
	if err != nil {
		t.Fatal(err)
	}
	var copied int
	for _, m := range regexp.MustCompile(`copy_file_range\(.*\) += (\d+)`).FindAllSubmatch(log, -1) {
		n, _ := strconv.Atoi(string(m[1]))
		copied += n
	}
	if copied != len(want) {
		t.Errorf("copy_file_range copied %d bytes of %d:\n%s", copied, len(want), log)
	}
}

// concatFolder joins the chunks of renders/j in dir into renders/j/output.mp4.
func concatFolder(t *testing.T, dir string) {
	b, err := storage.Open(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	srcs, err := storage.List(t.Context(), b, "renders/j/chunks/")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := storage.Concat(t.Context(), b, "renders/j/output.mp4", srcs, storage.ConcatOptions{}); err != nil {
		t.Fatal(err)
	}
}

// A long job's init segment and 10,000 fragments join on a local folder
// in seconds and in little memory (the target: under 256 MB).
func TestConcatManyLocalSources(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 10,001 files")
	}
	dir := t.TempDir()
	b, err := storage.Open(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	srcs := make([]string, 10_001)
	want := sha256.New()
	var total int
	for i := range srcs {
		srcs[i] = fmt.Sprintf("renders/long/chunks/%06d.m4s", i)
		data := pattern(int64(1*kib+i%(3*kib)), byte(i))
		want.Write(data)
		total += len(data)
		path := filepath.Join(dir, filepath.FromSlash(srcs[i]))
		if i == 0 {
			os.MkdirAll(filepath.Dir(path), 0o755)
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var stats storage.ConcatStats
	start := time.Now()
	peak := peakHeap(func() {
		stats, err = storage.Concat(t.Context(), b, "renders/long/output.mp4", srcs, storage.ConcatOptions{})
	})
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d sources, %.1f MiB in %v; the heap grew at most %.1f MiB", len(srcs), float64(total)/mib, took.Round(time.Millisecond), float64(peak)/mib)
	if peak > 256*mib {
		t.Errorf("the heap grew by %.1f MiB", float64(peak)/mib)
	}
	checkDigest(t, b, "renders/long/output.mp4", want.Sum(nil))
	if stats.Bytes != int64(total) || stats.BytesCopiedServerSide != int64(total) {
		t.Errorf("stats %+v for %d bytes", stats, total)
	}
}

func checkDigest(t *testing.T, b *blob.Bucket, key string, want []byte) {
	t.Helper()
	r, err := b.NewReader(t.Context(), key, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	h := sha256.New()
	if _, err := r.WriteTo(h); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(h.Sum(nil), want) {
		t.Errorf("%s does not have the sources' bytes", key)
	}
}
