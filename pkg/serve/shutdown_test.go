package serve_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/helios-project/infrastructure/pkg/serve"
)

// The test binary doubles as a function served over HTTP (HELPER_SERVE=port)
// whose handler takes a second, to check what SIGTERM does to it.
func TestMain(m *testing.M) {
	if port := os.Getenv("HELPER_SERVE"); port != "" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
		defer stop()
		slow := func(ctx context.Context, i in) (out, error) {
			time.Sleep(time.Second)
			return out{2 * i.N}, nil
		}
		err := serve.Start(ctx, serve.Function{Handler: serve.Handler[in, out](slow)}, serve.Platform{Port: port, Token: "t"}, nil)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// On SIGTERM (Cloud Run sends it 10 s before killing an instance) a
// function lets the request in flight finish, answers it, and exits 0;
// before, it ignored the signal until it was killed.
func TestSIGTERMFinishesInFlightAndExits(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	exe, _ := os.Executable()
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), "HELPER_SERVE="+port)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	url := "http://127.0.0.1:" + port + "/"
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", "127.0.0.1:"+port); err == nil {
			c.Close()
			break
		}
		if i > 200 {
			t.Fatalf("not listening: %s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	answered := make(chan string, 1)
	go func() {
		req, _ := http.NewRequest("POST", url, strings.NewReader(`{"N": 4}`))
		req.Header.Set("Authorization", "Bearer t")
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			answered <- err.Error()
			return
		}
		defer res.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(res.Body)
		answered <- res.Status + " " + b.String()
	}()
	time.Sleep(300 * time.Millisecond) // the request is in flight
	cmd.Process.Signal(syscall.SIGTERM)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	if got := <-answered; !strings.Contains(got, "200") || !strings.Contains(got, `"Twice":8`) {
		t.Errorf("the request in flight got %q", got)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exit: %v\n%s", err, stderr.String())
		}
	case <-time.After(serve.ShutdownGrace + 2*time.Second):
		t.Fatalf("still running after SIGTERM\n%s", stderr.String())
	}
}
