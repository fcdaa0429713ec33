package worker

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/helios-project/infrastructure/pkg/joberr"
	"github.com/helios-project/infrastructure/pkg/layout"
	"github.com/helios-project/infrastructure/pkg/storage"
)

const (
	defaultMaxAssetBytes = 2 << 30
	maxAssetEntries      = 100_000
)

// fetchAssets downloads a content-addressed bundle into tmp, checks its
// sha256 against the key, and unpacks it into work.
func (h *Handler) fetchAssets(ctx context.Context, key, tmp, work string) error {
	want, ok := layout.AssetDigest(key)
	if !ok {
		return joberr.Errorf(joberr.Permanent, joberr.CodeBadAssets, "asset key %q is not assets/<sha256>.tar.gz", key)
	}
	bundle := filepath.Join(tmp, "assets.tar.gz")
	if _, err := storage.DownloadFile(ctx, h.Store.Bucket(), key, bundle); err != nil {
		if storage.IsNotFound(err) {
			return joberr.Errorf(joberr.Permanent, joberr.CodeBadAssets, "asset bundle %s does not exist", key)
		}
		return joberr.Errorf(joberr.Retryable, joberr.CodeStorage, "%v", err)
	}
	f, err := os.Open(bundle)
	if err != nil {
		return joberr.Errorf(joberr.Retryable, joberr.CodeInternal, "open assets: %v", err)
	}
	defer f.Close()
	sum := sha256.New()
	if _, err := io.Copy(sum, f); err != nil {
		return joberr.Errorf(joberr.Retryable, joberr.CodeInternal, "hash assets: %v", err)
	}
	if got := hex.EncodeToString(sum.Sum(nil)); got != want {
		return joberr.Errorf(joberr.Permanent, joberr.CodeBadAssets, "asset bundle %s has sha256 %s", key, got)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return joberr.Errorf(joberr.Retryable, joberr.CodeInternal, "rewind assets: %v", err)
	}
	limit := h.MaxAssetBytes
	if limit <= 0 {
		limit = defaultMaxAssetBytes
	}
	if err := Extract(f, work, limit); err != nil {
		return joberr.Errorf(joberr.Permanent, joberr.CodeBadAssets, "asset bundle %s: %v", key, err)
	}
	return nil
}

// Extract unpacks a tar.gz stream into dir. Only regular files and
// directories are accepted; an entry whose name is absolute or climbs out of
// dir with "..", a link, a device, more than maxBytes in total or too many
// entries stop it with an error.
func Extract(r io.Reader, dir string, maxBytes int64) error {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return fmt.Errorf("not gzip: %w", err)
	}
	defer gz.Close()
	tr := tar.NewReader(gz)
	var total int64
	for entries := 0; ; entries++ {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read tar: %w", err)
		}
		if entries >= maxAssetEntries {
			return fmt.Errorf("more than %d entries", maxAssetEntries)
		}
		if err := extractEntry(tr, hdr, dir, &total, maxBytes); err != nil {
			return err
		}
	}
}

// extractEntry unpacks the entry hdr, read from r, into dir, adding a
// file's size to total (which may not exceed maxBytes).
func extractEntry(r io.Reader, hdr *tar.Header, dir string, total *int64, maxBytes int64) error {
	name := strings.TrimSuffix(strings.TrimPrefix(hdr.Name, "./"), "/")
	if name == "" || name == "." {
		return nil
	}
	if !layout.IsSafeRelative(name) {
		return fmt.Errorf("entry %q escapes the work dir", hdr.Name)
	}
	target := filepath.Join(dir, filepath.FromSlash(name))
	switch hdr.Typeflag {
	case tar.TypeXGlobalHeader:
		return nil // metadata (git archive writes one), not a file
	case tar.TypeDir:
		return os.MkdirAll(target, 0o755)
	case tar.TypeReg:
		*total += hdr.Size
		if *total > maxBytes {
			return fmt.Errorf("unpacks to more than %d bytes", maxBytes)
		}
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		return writeEntry(target, r, hdr)
	default:
		return fmt.Errorf("entry %q is a %s; only files and directories are allowed", hdr.Name, typeName(hdr.Typeflag))
	}
}

func writeEntry(target string, r io.Reader, hdr *tar.Header) error {
	f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, os.FileMode(hdr.Mode)&0o755|0o600)
	if err != nil {
		return fmt.Errorf("entry %q: %w", hdr.Name, err)
	}
	_, err = io.CopyN(f, r, hdr.Size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("entry %q: %w", hdr.Name, err)
	}
	return nil
}

func typeName(t byte) string {
	switch t {
	case tar.TypeSymlink:
		return "symlink"
	case tar.TypeLink:
		return "hard link"
	case tar.TypeChar, tar.TypeBlock:
		return "device"
	case tar.TypeFifo:
		return "fifo"
	}
	return fmt.Sprintf("tar entry of type %q", t)
}
