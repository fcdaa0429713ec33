// Command ffmpeg builds the Lambda layer that puts ffmpeg and ffprobe in
// /opt/bin (make layer):
//
//	go run ./layers/ffmpeg -arch arm64 -o layers/ffmpeg/build/ffmpeg-layer.zip
//
// By default it fetches pinned, statically linked builds (they run on Amazon
// Linux 2023, which has none of Debian's shared libraries) with `npm pack`
// from the npm registry, where the @ffmpeg-installer and @ffprobe-installer
// packages carry them, and checks each package's SHA-256 before using it.
// FFMPEG_BIN and FFPROBE_BIN package given binaries instead (offline builds,
// a newer ffmpeg). Any mismatch or missing binary stops the build, and the
// zip is only written once everything checked out.
package main

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/helios-project/infrastructure/pkg/zipfile"
)

// pinned is one npm package holding one static binary.
type pinned struct {
	Package string // name@version
	Tarball string // file name npm pack writes
	SHA256  string // of the tarball
	Member  string // path of the binary inside it
}

// builds are the pinned static builds, per Lambda architecture.
var builds = map[string]map[string]pinned{
	"arm64": {
		"ffmpeg":  {"@ffmpeg-installer/linux-arm64@4.1.4", "ffmpeg-installer-linux-arm64-4.1.4.tgz", "2dbe7362c21f8d6bec085d6ad5dfd4b883876013d670e0a8ec60fdb51399814a", "package/ffmpeg"},
		"ffprobe": {"@ffprobe-installer/linux-arm64@5.2.0", "ffprobe-installer-linux-arm64-5.2.0.tgz", "369ec8159c5a347e460fe5e2cc9a7e3ed9c53acecb8f29e2a6491e756103c060", "package/ffprobe"},
	},
	"amd64": {
		"ffmpeg":  {"@ffmpeg-installer/linux-x64@4.1.0", "ffmpeg-installer-linux-x64-4.1.0.tgz", "b836abe532912ae6c3388dbe713952af293a3d005fc9e4d34d52f14da99dda71", "package/ffmpeg"},
		"ffprobe": {"@ffprobe-installer/linux-x64@5.2.0", "ffprobe-installer-linux-x64-5.2.0.tgz", "8b6b2e34bad5ea7cfbe1914185145f514f620f24203a1a421e8d00a698bf8e61", "package/ffprobe"},
	},
}

func main() {
	arch := flag.String("arch", "arm64", "Lambda architecture: arm64 or amd64")
	out := flag.String("o", "layers/ffmpeg/build/ffmpeg-layer.zip", "layer zip to write")
	flag.Parse()
	err := build(context.Background(), *arch, *out, os.Getenv("FFMPEG_BIN"), os.Getenv("FFPROBE_BIN"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "ffmpeg layer:", err)
		os.Exit(1)
	}
	fmt.Println(*out)
}

// build writes the layer zip from the given binaries, or from the pinned
// packages when both are empty.
func build(ctx context.Context, arch, out, ffmpegBin, ffprobeBin string) error {
	pins, ok := builds[arch]
	if !ok {
		return fmt.Errorf("architecture %q: expected arm64 or amd64", arch)
	}
	work, err := os.MkdirTemp("", "ffmpeg-layer-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	bins := map[string]string{"ffmpeg": ffmpegBin, "ffprobe": ffprobeBin}
	switch {
	case ffmpegBin != "" && ffprobeBin != "":
	case ffmpegBin != "" || ffprobeBin != "":
		return errors.New("set both FFMPEG_BIN and FFPROBE_BIN, or neither to use the pinned static builds")
	default:
		for _, tool := range []string{"ffmpeg", "ffprobe"} {
			if bins[tool], err = fetch(ctx, pins[tool], work); err != nil {
				return err
			}
		}
	}
	for _, tool := range []string{"ffmpeg", "ffprobe"} {
		path := bins[tool]
		info, err := os.Stat(path)
		if err != nil {
			return fmt.Errorf("%s binary: %w", tool, err)
		}
		if !info.Mode().IsRegular() || info.Mode().Perm()&0o111 == 0 {
			return fmt.Errorf("%s binary %s is not an executable file", tool, path)
		}
	}
	return writeZip(out, bins)
}

// fetch runs `npm pack` for a pinned package, checks its SHA-256 and
// extracts the binary.
func fetch(ctx context.Context, p pinned, dir string) (string, error) {
	cmd := exec.CommandContext(ctx, "npm", "pack", "--silent", "--pack-destination", dir, p.Package)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("npm pack %s: %w\n%s", p.Package, err, msg)
	}
	return extractVerified(filepath.Join(dir, p.Tarball), p.SHA256, p.Member, dir)
}

// extractVerified checks a tarball against its pinned digest and extracts
// one member as an executable file.
func extractVerified(tarball, want, member, dir string) (string, error) {
	f, err := os.Open(tarball)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return "", fmt.Errorf("checksum mismatch for %s: expected sha256 %s, got %s; refusing to package it", filepath.Base(tarball), want, got)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	gz, err := gzip.NewReader(f)
	if err != nil {
		return "", err
	}
	tr := tar.NewReader(gz)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return "", fmt.Errorf("%s has no %s", filepath.Base(tarball), member)
		}
		if err != nil {
			return "", err
		}
		if hdr.Name != member || hdr.Typeflag != tar.TypeReg {
			continue
		}
		out := filepath.Join(dir, filepath.Base(member))
		w, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
		if err != nil {
			return "", err
		}
		_, err = io.Copy(w, tr)
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		return out, err
	}
}

// writeZip stores bin/ffmpeg and bin/ffprobe (mode 0755) in out, atomically.
func writeZip(out string, bins map[string]string) error {
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	return zipfile.Write(out, []zipfile.Entry{
		{Name: "bin/ffmpeg", Path: bins["ffmpeg"], Mode: 0o755},
		{Name: "bin/ffprobe", Path: bins["ffprobe"], Mode: 0o755},
	})
}
