//go:build linux

package sandbox_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/helios-project/infrastructure/pkg/execx"
	"github.com/helios-project/infrastructure/pkg/job"
	"github.com/helios-project/infrastructure/pkg/joberr"
	"github.com/helios-project/infrastructure/pkg/sandbox"
)

// The test binary is the launcher (sandbox.Main) and the confined command
// (helper modes):
//
//	sandbox.test helper-write PATH       write PATH
//	sandbox.test helper-read PATH        read PATH
//	sandbox.test helper-connect ADDR     connect to ADDR over TCP
//	sandbox.test helper-udp ADDR         send a datagram to ADDR
//	sandbox.test helper-sockets ADDR     install only the seccomp filter, then try TCP and UDP to ADDR and a Unix socket pair
//	sandbox.test helper-exec PATH        run PATH
//	sandbox.test helper-daemon PIDFILE   start a detached `sleep 60` in a new session, write its pid, exit
//	sandbox.test helper-daemon-hang PIDFILE  the same, then hang
func TestMain(m *testing.M) {
	sandbox.Main()
	if len(os.Args) > 2 && strings.HasPrefix(os.Args[1], "helper-") {
		if err := helper(os.Args[1], os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func helper(mode, arg string) error {
	switch mode {
	case "helper-write":
		return os.WriteFile(arg, []byte("x"), 0o600)
	case "helper-read":
		_, err := os.ReadFile(arg)
		return err
	case "helper-connect":
		c, err := net.DialTimeout("tcp", arg, 2*time.Second)
		if err == nil {
			c.Close()
		}
		return err
	case "helper-udp":
		c, err := net.Dial("udp", arg)
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte("x"))
		return err
	case "helper-sockets":
		if err := sandbox.RefuseNetwork(); err != nil {
			return err
		}
		var problems []string
		for _, mode := range []string{"helper-connect", "helper-udp"} {
			if err := helper(mode, arg); !errors.Is(err, syscall.EPERM) {
				problems = append(problems, fmt.Sprintf("%s: %v, want EPERM", mode, err))
			}
		}
		if _, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0); err != nil {
			problems = append(problems, fmt.Sprintf("unix socket pair: %v", err))
		}
		if len(problems) > 0 {
			return errors.New(strings.Join(problems, "; "))
		}
		return nil
	case "helper-exec":
		return exec.Command(arg).Run()
	case "helper-daemon":
		cmd := exec.Command("sleep", "60")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := cmd.Start(); err != nil {
			return err
		}
		return os.WriteFile(arg, []byte(strconv.Itoa(cmd.Process.Pid)), 0o600)
	case "helper-daemon-hang":
		if err := helper("helper-daemon", arg); err != nil {
			return err
		}
		time.Sleep(time.Minute)
		return nil
	}
	return fmt.Errorf("unknown helper %s", mode)
}

func requireLandlock(t *testing.T, minABI int) {
	t.Helper()
	if s := sandbox.Probe(false); s.LandlockABI < minABI {
		t.Skipf("needs Landlock ABI %d: %s", minABI, s.Limits)
	}
}

func runner(t *testing.T, network bool) *execx.Runner {
	t.Helper()
	l, err := sandbox.Self(network)
	if err != nil {
		t.Fatal(err)
	}
	exe, _ := os.Executable()
	return &execx.Runner{Allowed: []string{exe, "ffmpeg"}, Confiner: l}
}

func run(t *testing.T, r *execx.Runner, dir string, argv ...string) error {
	t.Helper()
	_, err := r.Run(t.Context(), execx.Cmd{Argv: argv, Dir: dir, Timeout: 30 * time.Second})
	return err
}

func self(t *testing.T) string {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// A confined command writes in its work dir and nowhere else: not beside
// it, not in another chunk's dir, not in the storage folder.
func TestWritesOnlyInTheWorkDir(t *testing.T) {
	requireLandlock(t, 1)
	r, work, elsewhere := runner(t, false), t.TempDir(), t.TempDir()
	if err := run(t, r, work, self(t), "helper-write", filepath.Join(work, "segment.mp4")); err != nil {
		t.Errorf("write in the work dir: %v", err)
	}
	for _, path := range []string{filepath.Join(elsewhere, "x"), filepath.Join(work, "..", "escape"), "/dev/shm/helios-escape"} {
		if err := run(t, r, work, self(t), "helper-write", path); err == nil {
			t.Errorf("wrote %s outside the work dir", path)
		}
		if _, err := os.Stat(path); err == nil {
			t.Errorf("%s exists", path)
			os.Remove(path)
		}
	}
}

// ffmpeg, the allowed program, cannot write outside either (-y /abs/path,
// as the finding reproduced), and still renders inside.
func TestFFmpegWritesOnlyInTheWorkDir(t *testing.T) {
	requireLandlock(t, 1)
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg not installed")
	}
	r, work, elsewhere := runner(t, false), t.TempDir(), t.TempDir()
	args := []string{"ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=32x32:rate=1", "-frames:v", "1", "-y"}
	if err := run(t, r, work, append(args, "inside.png")...); err != nil {
		t.Fatalf("render in the work dir: %v", err)
	}
	outside := filepath.Join(elsewhere, "outside.png")
	if err := run(t, r, work, append(args, outside)...); err == nil {
		t.Error("ffmpeg wrote outside its work dir")
	}
	if _, err := os.Stat(outside); err == nil {
		t.Errorf("%s exists", outside)
	}
}

// It reads the system's directories and its work dir, not other dirs.
func TestReadsOnlyWhatItNeeds(t *testing.T) {
	requireLandlock(t, 1)
	r, work, elsewhere := runner(t, false), t.TempDir(), t.TempDir()
	secret := filepath.Join(elsewhere, "other-job-output.mp4")
	os.WriteFile(secret, []byte("x"), 0o600)
	os.WriteFile(filepath.Join(work, "asset.png"), []byte("x"), 0o600)
	if err := run(t, r, work, self(t), "helper-read", secret); err == nil {
		t.Error("read a file outside the work dir and the system's directories")
	}
	for _, path := range []string{filepath.Join(work, "asset.png"), "/etc/passwd"} {
		if err := run(t, r, work, self(t), "helper-read", path); err != nil {
			t.Errorf("read %s: %v", path, err)
		}
	}
}

// Nothing it wrote can be executed: not a program.
func TestNoExecutionFromTheWorkDir(t *testing.T) {
	requireLandlock(t, 1)
	r, work := runner(t, false), t.TempDir()
	data, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Skip(err)
	}
	os.WriteFile(filepath.Join(work, "payload"), data, 0o700)
	if err := run(t, r, work, self(t), "helper-exec", filepath.Join(work, "payload")); err == nil {
		t.Error("executed a program from the work dir")
	}
	if err := run(t, r, work, self(t), "helper-exec", "/bin/true"); err != nil {
		t.Errorf("run a system program: %v", err)
	}
}

// By default a command reaches no TCP listener, not even on loopback;
// with network on it does.
func TestNoNetworkByDefault(t *testing.T) {
	requireLandlockOrSeccomp(t)
	tcp, udp := loopbackListeners(t)
	work := t.TempDir()
	for _, c := range []struct{ mode, addr string }{{"helper-connect", tcp}, {"helper-udp", udp}} {
		err := run(t, runner(t, false), work, self(t), c.mode, c.addr)
		if err == nil {
			t.Fatalf("%s %s: reached a loopback listener with network off", c.mode, c.addr)
		}
		var je *joberr.Error
		if !errors.As(err, &je) || !(strings.Contains(je.StderrTail, "operation not permitted") || strings.Contains(je.StderrTail, "permission denied")) {
			t.Errorf("%s: refused for another reason: %v", c.mode, err)
		}
		if err := run(t, runner(t, true), work, self(t), c.mode, c.addr); err != nil {
			t.Errorf("%s, network on: %v", c.mode, err)
		}
	}
}

// Where Landlock cannot refuse TCP (kernels before ABI 4) or UDP, the
// seccomp filter alone keeps the command off the network, and leaves it
// Unix sockets.
func TestSeccompAloneRefusesTheNetwork(t *testing.T) {
	if s := sandbox.Probe(false); !s.Seccomp {
		t.Skip(s.Limits)
	}
	tcp, _ := loopbackListeners(t)
	cmd := exec.Command(self(t), "helper-sockets", tcp)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
}

func requireLandlockOrSeccomp(t *testing.T) {
	t.Helper()
	if s := sandbox.Probe(false); s.LandlockABI < 4 && !s.Seccomp {
		t.Skip(s.Limits)
	}
}

// loopbackListeners returns the address of a TCP listener that accepts
// and closes connections, and of a UDP socket, both on 127.0.0.1 (the same
// port number for both, so one address serves the seccomp helper).
func loopbackListeners(t *testing.T) (tcp, udp string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	pc, err := net.ListenPacket("udp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return ln.Addr().String(), pc.LocalAddr().String()
}

// A daemon the command leaves behind (a new session, so outside its
// process group) does not outlive the chunk.
func TestDaemonsEndWithTheChunk(t *testing.T) {
	r, work := runner(t, false), t.TempDir()
	pidFile := filepath.Join(work, "daemon.pid")
	if err := run(t, r, work, self(t), "helper-daemon", pidFile); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(string(data))
	if alive(pid) {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Fatalf("daemon %d outlived its chunk", pid)
	}
}

// On timeout the whole tree goes, daemons included.
func TestTimeoutEndsTheTree(t *testing.T) {
	r, work := runner(t, false), t.TempDir()
	pidFile := filepath.Join(work, "daemon.pid")
	start := time.Now()
	_, err := r.Run(t.Context(), execx.Cmd{Argv: []string{self(t), "helper-daemon-hang", pidFile}, Dir: work, Timeout: time.Second})
	if err == nil || !strings.Contains(err.Error(), "did not finish") {
		t.Fatalf("Run = %v, want a timeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Run returned %s after a 1 s timeout", d)
	}
	data, _ := os.ReadFile(pidFile)
	pid, _ := strconv.Atoi(string(data))
	if pid == 0 {
		t.Fatal("the daemon was not started")
	}
	if alive(pid) {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Fatalf("daemon %d outlived its chunk", pid)
	}
}

func alive(pid int) bool {
	// A zombie is gone for our purposes; look at its state.
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && len(s) > i+2 && s[i+2] != 'Z'
}

// A program may read its package through an npm-style link (PKG/bin/NAME ->
// PKG/NAME), and nothing more through any other link.
func TestConfineReadsAProgramsPackageOnly(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"pkg/bin", "pkg/node_modules", "home", "usr/bin"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	for _, f := range []string{"pkg/helios.mjs", "home/tool"} {
		os.WriteFile(filepath.Join(root, f), []byte("#!/bin/sh\n"), 0o755)
	}
	os.Symlink("../helios.mjs", filepath.Join(root, "pkg/bin/helios"))
	os.Symlink(filepath.Join(root, "home/tool"), filepath.Join(root, "usr/bin/tool"))
	os.Symlink(filepath.Join(root, "home/tool"), filepath.Join(root, "pkg/bin/elsewhere"))
	l := &sandbox.Launcher{Exe: "launcher"}
	for _, tc := range []struct {
		program string
		want    []string
	}{
		{"pkg/bin/helios", []string{"pkg/bin", "pkg"}},
		{"usr/bin/tool", []string{"usr/bin"}},
		{"pkg/bin/elsewhere", []string{"pkg/bin"}},
	} {
		argv := l.Confine(t.TempDir(), t.TempDir(), []string{filepath.Join(root, tc.program)})
		var p sandbox.Policy
		if err := json.Unmarshal([]byte(argv[2]), &p); err != nil {
			t.Fatalf("%s: policy %q: %v", tc.program, argv[2], err)
		}
		var want []string
		for _, d := range tc.want {
			want = append(want, filepath.Join(root, d))
		}
		if !slices.Equal(p.Read, want) {
			t.Errorf("%s may read %v, want %v", tc.program, p.Read, want)
		}
	}
}

// evilLibrary compiles, into dir, a shared library whose constructor
// writes "loaded" into the current directory when it is mapped.
func evilLibrary(t *testing.T, dir string) string {
	t.Helper()
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Fatal("gcc not found: install it (apt-get install -y gcc) to build the test's library")
	}
	src := filepath.Join(t.TempDir(), "evil.c")
	os.WriteFile(src, []byte(`#include <fcntl.h>
#include <unistd.h>
__attribute__((constructor)) static void evil(void) {
	int fd = open("loaded", O_CREAT | O_WRONLY, 0600);
	if (fd >= 0) close(fd);
}
`), 0o600)
	lib := filepath.Join(dir, "evil.so")
	if out, err := exec.Command(gcc, "-shared", "-fPIC", "-o", lib, src).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	return lib
}

// loader builds a program, outside the work dir, that loads the library
// it is given with dlopen, as a plugin host does.
func loader(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "loader.c")
	os.WriteFile(src, []byte(`#include <dlfcn.h>
#include <stdio.h>
int main(int argc, char **argv) {
	if (argc < 2 || !dlopen(argv[1], RTLD_NOW)) {
		fprintf(stderr, "%s\n", dlerror());
		return 1;
	}
	return 0;
}
`), 0o600)
	bin := filepath.Join(dir, "loader")
	if out, err := exec.Command("gcc", "-o", bin, src, "-ldl").CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	return bin
}

func loaded(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "loaded"))
	return err == nil
}

// A library of the work dir cannot be mapped executable where the work
// dir is noexec (a user namespace of the command's own), Landlock or not;
// with Landlock alone it can (its execute right covers execve only), which
// is why the layer is there.
func TestNoLibraryFromTheWorkDir(t *testing.T) {
	if s := sandbox.Probe(false); !s.NoExec {
		t.Skipf("no user namespaces here: %s", s.Limits)
	}
	ld := loader(t)
	l, err := sandbox.Self(false)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		launcher *sandbox.Launcher
		loads    bool
	}{
		{"noexec and Landlock", l, false},
		{"noexec without Landlock", sandbox.WithoutLandlock(l), false},
		{"Landlock alone", &sandbox.Launcher{Exe: l.Exe}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			work := t.TempDir()
			evilLibrary(t, work)
			r := &execx.Runner{Allowed: job.Allowlist{ld}, Confiner: tc.launcher}
			_, err := r.Run(t.Context(), execx.Cmd{Argv: []string{ld, "./evil.so"}, Dir: work, Home: t.TempDir(), Timeout: 30 * time.Second})
			if loaded(work) != tc.loads {
				t.Errorf("the library was loaded: %v (want %v); the command said %v", loaded(work), tc.loads, err)
			}
			if !tc.loads && (err == nil || !strings.Contains(errTail(err), "failed to map segment")) {
				t.Errorf("refused for another reason: %v %s", err, errTail(err))
			}
		})
	}
}

func errTail(err error) string {
	var je *joberr.Error
	if errors.As(err, &je) {
		return je.StderrTail
	}
	return ""
}

// The audit's Vulkan route: a bundle holding an implicit layer under
// .local/share, found through HOME, loaded by the allowed ffmpeg with
// -init_hw_device vulkan (which the argument allowlist now refuses before
// anything runs). Each layer of the sandbox stops it on its own: a home
// apart from the bundle, and the noexec work dir; with neither, it loads.
func TestVulkanLayerOfTheBundle(t *testing.T) {
	if out, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-init_hw_device", "vulkan", "-f", "lavfi", "-i", "nullsrc=s=16x16", "-frames:v", "1", "-f", "null", "-").CombinedOutput(); err != nil {
		t.Skipf("this ffmpeg opens no Vulkan device: %v %s", err, out)
	}
	l, err := sandbox.Self(false)
	if err != nil {
		t.Fatal(err)
	}
	noexec := sandbox.Probe(false).NoExec
	for _, tc := range []struct {
		name      string
		launcher  *sandbox.Launcher
		homeApart bool
		loads     bool
	}{
		{"home in the bundle, no other layer", sandbox.WithoutLandlock(&sandbox.Launcher{Exe: l.Exe}), false, true},
		{"a home apart", sandbox.WithoutLandlock(&sandbox.Launcher{Exe: l.Exe}), true, false},
		{"noexec, home in the bundle", sandbox.WithoutLandlock(l), false, false},
		{"every layer", l, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.launcher.NoExec && !noexec {
				t.Skip("no user namespaces here")
			}
			work := t.TempDir()
			layers := filepath.Join(work, ".local", "share", "vulkan", "implicit_layer.d")
			os.MkdirAll(layers, 0o700)
			evilLibrary(t, layers)
			os.WriteFile(filepath.Join(layers, "evil.json"), []byte(`{"file_format_version": "1.0.0", "layer": {
				"name": "VK_LAYER_HELIOS_test", "type": "GLOBAL", "library_path": "./evil.so", "api_version": "1.3.0",
				"implementation_version": "1", "description": "a layer of the job's bundle", "disable_environment": {"HELIOS_TEST_NO_LAYER": "1"}}}`), 0o600)
			home := work
			if tc.homeApart {
				home = t.TempDir()
			}
			r := &execx.Runner{Allowed: job.Allowlist{"ffmpeg"}, Confiner: tc.launcher}
			r.Run(t.Context(), execx.Cmd{Argv: []string{"ffmpeg", "-hide_banner", "-loglevel", "error", "-init_hw_device", "vulkan",
				"-f", "lavfi", "-i", "nullsrc=s=16x16", "-frames:v", "1", "-f", "null", "-"}, Dir: work, Home: home, Timeout: time.Minute})
			if loaded(work) != tc.loads {
				t.Errorf("the bundle's layer was loaded: %v, want %v", loaded(work), tc.loads)
			}
		})
	}
}
