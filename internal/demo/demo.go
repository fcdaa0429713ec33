// Package demo holds what the demos of the cloud paths share: the same job
// rendered by the local adapter as the reference, and the frame-by-frame
// comparison.
package demo

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os/exec"
	"slices"
	"strings"

	"github.com/helios-project/infrastructure/pkg/config"
	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/orchestrator"
	"github.com/helios-project/infrastructure/pkg/pipeline"
	"github.com/helios-project/infrastructure/pkg/storage"
)

// RenderLocally renders spec as job id with the local adapter on a folder
// and saves the video to out.
func RenderLocally(ctx context.Context, spec []byte, id, dir, out string) error {
	cfg, err := config.FromEnv(func(string) string { return "" })
	if err != nil {
		return err
	}
	cfg.StorageURL = dir
	stack, err := pipeline.Open(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer stack.Close()
	o, err := stack.Orchestrator(ctx)
	if err != nil {
		return err
	}
	s, err := stack.Jobs.Prepare(bytes.NewReader(spec), id)
	if err != nil {
		return err
	}
	st, err := o.Run(ctx, s, orchestrator.RunOptions{})
	if err != nil {
		return err
	}
	if st.State != job.StateDone {
		return fmt.Errorf("local render %s: %v", st.State, st.Error)
	}
	_, err = storage.DownloadFile(ctx, stack.Bucket, st.Output, out)
	return err
}

// FrameMD5 returns the md5 of every decoded video frame of a file.
func FrameMD5(ctx context.Context, path string) ([]string, error) {
	cmd := exec.CommandContext(ctx, "ffmpeg", "-nostdin", "-loglevel", "error", "-i", path, "-map", "0:v", "-f", "framemd5", "-")
	data, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("framemd5 %s: %w", path, err)
	}
	var sums []string
	for _, line := range strings.Split(string(data), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, ",")
		sums = append(sums, strings.TrimSpace(f[len(f)-1]))
	}
	return sums, nil
}

// CompareWithLocal renders spec locally in work and checks that got has the
// same frames; it returns the number of frames compared.
func CompareWithLocal(ctx context.Context, spec []byte, id, work, got string, totalFrames int) (int, error) {
	reference := work + "/local.mp4"
	if err := RenderLocally(ctx, spec, id, work+"/local-storage", reference); err != nil {
		return 0, err
	}
	g, err := FrameMD5(ctx, got)
	if err != nil {
		return 0, err
	}
	w, err := FrameMD5(ctx, reference)
	if err != nil {
		return 0, err
	}
	if len(g) != totalFrames || !slices.Equal(g, w) {
		return 0, fmt.Errorf("%s has %d frames that differ from the local render's %d", got, len(g), len(w))
	}
	return len(g), nil
}

// Step prints a step of a demo.
func Step(msg string) { fmt.Println("==> " + msg) }
