package stitch_test

import "os/exec"

func runFFmpeg(args []string) ([]byte, error) {
	return exec.Command("ffmpeg", args...).CombinedOutput()
}
