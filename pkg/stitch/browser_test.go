package stitch_test

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/helios-project/infrastructure/internal/testkit"
	"github.com/helios-project/infrastructure/pkg/framerate"
)

// playbackPage loads the video in a <video> element, seeks to the middle
// of frame SEEK_FRAME, draws what it shows on a canvas and posts what it
// saw to /report.
const playbackPage = `<!doctype html>
<video id="v" src="/video" muted preload="auto"></video>
<script>
const v = document.getElementById('v');
const report = (o) => fetch('/report', {method: 'POST', body: JSON.stringify(o)});
v.addEventListener('error', () => report({error: 'media error ' + (v.error ? v.error.code + ' ' + v.error.message : '')}));
v.addEventListener('loadedmetadata', async () => {
  try {
    const duration = v.duration;
    const shown = new Promise(r => v.requestVideoFrameCallback(() => r()));
    v.currentTime = SEEK_TIME;
    await new Promise(r => v.addEventListener('seeked', r, {once: true}));
    await Promise.race([shown, new Promise(r => setTimeout(r, 2000))]);
    const c = document.createElement('canvas');
    c.width = v.videoWidth; c.height = v.videoHeight;
    const g = c.getContext('2d');
    g.drawImage(v, 0, 0);
    const p = g.getImageData(c.width >> 1, c.height >> 1, 1, 1).data;
    report({duration, width: v.videoWidth, height: v.videoHeight, currentTime: v.currentTime, pixel: [p[0], p[1], p[2]]});
  } catch (e) {
    report({error: String(e)});
  }
});
</script>`

// playback is what the page reports.
type playback struct {
	Error         string  `json:"error"`
	Duration      float64 `json:"duration"`
	Width, Height int
	CurrentTime   float64 `json:"currentTime"`
	Pixel         [3]int  `json:"pixel"`
}

// play serves video to headless Chromium on loopback and returns what the
// page saw at frame seekFrame (seeking to its middle).
func play(t *testing.T, video string, rate framerate.Rate, seekFrame int) playback {
	t.Helper()
	chromium := testkit.RequireChromium(t)
	reports := make(chan playback, 1)
	mux := http.NewServeMux()
	seek := (float64(seekFrame) + 0.5) * float64(rate.Den) / float64(rate.Num)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, strings.Replace(playbackPage, "SEEK_TIME", fmt.Sprintf("%.6f", seek), 1))
	})
	mux.HandleFunc("GET /video", func(w http.ResponseWriter, r *http.Request) {
		f, err := os.Open(video)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer f.Close()
		w.Header().Set("Content-Type", "video/mp4")
		http.ServeContent(w, r, "video.mp4", time.Time{}, f) // with Range requests, as a store serves it
	})
	mux.HandleFunc("POST /report", func(w http.ResponseWriter, r *http.Request) {
		var p playback
		if err := json.NewDecoder(r.Body).Decode(&p); err != nil {
			p.Error = "bad report: " + err.Error()
		}
		select {
		case reports <- p:
		default:
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	defer srv.Close()

	var stderr strings.Builder
	cmd := exec.Command(chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--disable-extensions", "--mute-audio", "--autoplay-policy=no-user-gesture-required",
		"--user-data-dir="+t.TempDir(), "http://"+ln.Addr().String()+"/")
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
	}()
	select {
	case p := <-reports:
		if p.Error != "" {
			t.Fatalf("Chromium could not play the video: %s", p.Error)
		}
		return p
	case <-time.After(90 * time.Second):
		t.Fatalf("Chromium reported nothing in 90 s; its stderr:\n%s", stderr.String())
	}
	return playback{}
}

// frameColour is the colour render.argv gives frame n.
func frameColour(n int) [3]int {
	return [3]int{n%8*32 + 16, n/8%8*32 + 16, 128}
}

// TestOutputPlaysInChromium: a byte-joined output, and one with audio
// encoded once, load in a <video> element with the right duration, and
// seeking to the middle shows the middle frame.
func TestOutputPlaysInChromium(t *testing.T) {
	rate := framerate.Rate{Num: 25, Den: 1}
	const total = 40
	for _, tt := range []struct {
		name string
		r    render
	}{
		{"video", render{rate: rate, size: "64x48", video: x264BFrames, format: "mp4"}},
		{"video and AAC", render{rate: rate, size: "64x48", video: x264BFrames, format: "mp4", audio: "sine", acodec: []string{"-c:a", "alac"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			j := tt.r.job(t, "file://"+t.TempDir(), sizes(total, 7), false)
			mid := total / 2
			p := play(t, j.output, rate, mid)
			if want := float64(total) / rate.FPS(); math.Abs(p.Duration-want) > 0.001 {
				t.Errorf("duration %.4f s, want %.4f s", p.Duration, want)
			}
			if p.Width != 64 || p.Height != 48 {
				t.Errorf("size %dx%d, want 64x48", p.Width, p.Height)
			}
			want := frameColour(mid)
			for i := range want {
				if math.Abs(float64(p.Pixel[i]-want[i])) > 12 {
					t.Errorf("at %.3f s Chromium shows colour %v; frame %d is %v (frame %d would be %v, frame %d %v)",
						p.CurrentTime, p.Pixel, mid, want, mid-1, frameColour(mid-1), mid+1, frameColour(mid+1))
					break
				}
			}
		})
	}
}
