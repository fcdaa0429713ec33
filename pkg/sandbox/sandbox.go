//go:build linux

// Package sandbox confines the command of a chunk. The allowlist decides
// which program runs; this decides what it can touch and outlive. The
// process running the worker re-executes itself as a small launcher
// (Launcher.Confine gives the argv), which, before it starts the command:
//
//   - becomes a child subreaper, so every process the command starts — a
//     daemon that called setsid included — stays its descendant, and kills
//     them all when the command ends or it is told to stop (SIGTERM);
//   - asks to die with its parent (PR_SET_PDEATHSIG), and the command to die
//     with it, so a killed worker or CLI leaves no command running;
//   - applies a Landlock ruleset (unprivileged, inherited by everything the
//     command starts): the command may write only in its work dir, may
//     execute nothing from there, may read only the system's directories
//     and its work dir (not other chunks' dirs nor the storage folder), may
//     neither connect nor bind TCP sockets unless the deployment turns
//     network on, and may not signal or reach abstract sockets of processes
//     outside its sandbox;
//   - unless network is on, installs a seccomp filter under which it can
//     open no socket but Unix and netlink ones (so no UDP, raw or vsock
//     either, and no TCP where Landlock cannot refuse it).
//
// Both are applied best effort: a kernel without Landlock (or with an older
// ABI) or without seccomp enforces what it knows, and Probe says how much
// that is, so the worker can log it. The launcher is this same binary: every main that runs
// commands (the functions, the CLI, test binaries) calls Main first.
package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/landlock-lsm/go-landlock/landlock"

	"github.com/helios-project/infrastructure/pkg/proc"

	ll "github.com/landlock-lsm/go-landlock/landlock/syscall"
	"golang.org/x/sys/unix"
)

// launcherArg, as os.Args[1], makes Main run the launcher; confineArg the
// second stage, which applies the ruleset to itself and becomes the
// command. Two stages, because Landlock gives each thread of a Go process
// that restricts itself a domain of its own (before ABI 8), and a domain
// may not signal another: the launcher stays outside, where it can end
// everything inside.
const (
	launcherArg = "__helios_sandbox_launcher__"
	confineArg  = "__helios_sandbox_confine__"
)

// Policy is what a confined command may do.
type Policy struct {
	WorkDir string   `json:"workDir"`           // where it runs, and may write
	Home    string   `json:"home,omitempty"`    // the other place it may write: its HOME, apart from the job's files
	Network bool     `json:"network,omitempty"` // TCP connect and bind allowed
	Read    []string `json:"read,omitempty"`    // more directories it may read and execute from
	// NoExec asks for WorkDir and Home to be noexec: the launcher starts
	// the confine stage in namespaces of its own, where it can, and tells
	// it here whether it did.
	NoExec bool `json:"noExec,omitempty"`
	// SkipLandlock leaves Landlock out (tests of the other layers alone,
	// as on a kernel without it).
	SkipLandlock bool `json:"skipLandlock,omitempty"`
}

// systemDirs are what a command may read and execute from: programs,
// libraries, configuration, fonts; /proc and /sys for its own process;
// /dev for null, zero and urandom. Missing ones are skipped.
var systemDirs = []string{"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt", "/proc", "/sys", "/dev"}

// Launcher confines commands by re-executing Exe as the launcher.
type Launcher struct {
	Exe     string   // this binary (os.Executable), whose main calls Main
	Network bool     // let commands use TCP (fonts or compositions over https)
	Read    []string // extra directories commands may read (a renderer's install dir)
	NoExec  bool     // make the work dir and home noexec where the kernel allows (noexec.go)

	skipLandlock bool // tests: leave Landlock out
}

// Self is a Launcher re-executing the running binary, with every layer it
// can have.
func Self(network bool, read ...string) (*Launcher, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("sandbox: find this executable: %w", err)
	}
	return &Launcher{Exe: exe, Network: network, Read: read, NoExec: true}, nil
}

// Confine returns the argv that runs argv (argv[0] a resolved path)
// confined to work and home. The program may read the directory it was found in, and
// its package: when argv[0] is PKG/bin/NAME linking to a file directly in
// PKG (as npm links bin/helios -> ../helios.mjs), it reads its modules
// there. Only that layout: a link elsewhere (/usr/local/bin/x -> ~/x) opens
// nothing more.
func (l *Launcher) Confine(work, home string, argv []string) []string {
	read := []string{filepath.Dir(argv[0])}
	if pkg := filepath.Dir(read[0]); filepath.Base(read[0]) == "bin" {
		if real, err := filepath.EvalSymlinks(argv[0]); err == nil && filepath.Dir(real) == pkg {
			read = append(read, pkg)
		}
	}
	read = append(read, l.Read...)
	p, _ := json.Marshal(Policy{WorkDir: work, Home: home, Network: l.Network, Read: read, NoExec: l.NoExec, SkipLandlock: l.skipLandlock})
	return append([]string{l.Exe, launcherArg, string(p), "--"}, argv...)
}

// Main runs the launcher and exits if this process was started as one; it
// returns at once otherwise. Call it first in main (and in TestMain of
// packages whose tests run commands).
func Main() {
	if len(os.Args) < 2 {
		return
	}
	switch os.Args[1] {
	case launcherArg:
		os.Exit(launch(os.Args[2:]))
	case confineArg:
		os.Exit(confine(os.Args[2:]))
	case probeArg:
		if len(os.Args) > 2 {
			os.Exit(runProbe(os.Args[2]))
		}
		os.Exit(exitSetup)
	}
}

// confine is the second stage: restrict this process, then become the
// command (execve leaves one thread, in one domain, for it and everything
// it starts).
func confine(args []string) int {
	p, argv, err := parse(args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "helios sandbox: %v\n", err)
		return exitSetup
	}
	if p.NoExec {
		// The bind mounts cover the dirs; the current directory still
		// points below them until entered again.
		err := noexec(p.WorkDir, p.Home)
		if err == nil {
			err = os.Chdir(p.WorkDir)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "helios sandbox: %v\n", err)
			return exitSetup
		}
	}
	if p.SkipLandlock {
		if !p.Network && seccomp.Supported() {
			err = refuseNetwork()
		}
	} else {
		err = Restrict(p)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "helios sandbox: %v\n", err)
		return exitSetup
	}
	err = syscall.Exec(argv[0], argv, os.Environ())
	fmt.Fprintf(os.Stderr, "helios sandbox: exec %s: %v\n", argv[0], err)
	return exitExec
}

func parse(args []string) (Policy, []string, error) {
	var p Policy
	if len(args) < 3 || args[1] != "--" {
		return p, nil, fmt.Errorf("usage: POLICY -- PROGRAM [ARG...]")
	}
	if err := json.Unmarshal([]byte(args[0]), &p); err != nil || p.WorkDir == "" {
		return p, nil, fmt.Errorf("bad policy %q: %v", args[0], err)
	}
	return p, args[2:], nil
}

// Exit codes of the launcher itself (a command's own code passes through).
const (
	exitSetup = 125 // the sandbox could not be set up; nothing ran
	exitExec  = 127 // the command could not be started
)

func launch(args []string) int {
	fail := func(code int, format string, a ...any) int {
		fmt.Fprintf(os.Stderr, "helios sandbox: "+format+"\n", a...)
		return code
	}
	p, _, err := parse(args)
	if err != nil {
		return fail(exitSetup, "%v", err)
	}
	exe, err := os.Executable()
	if err != nil {
		return fail(exitSetup, "%v", err)
	}
	if err := bindToParent(); err != nil {
		return fail(exitSetup, "%v", err)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	cmd, err := startConfine(exe, p, args[1:])
	if err != nil && p.NoExec {
		// The kernel refuses the namespace: confine without it.
		p.NoExec = false
		cmd, err = startConfine(exe, p, args[1:])
	}
	if err != nil {
		return fail(exitExec, "%v", err)
	}
	code := wait(cmd, sigs)
	// Whatever the command left behind (daemons, children of children)
	// was reparented to this subreaper: end it with the chunk.
	KillDescendants(5 * time.Second)
	return code
}

// bindToParent makes this process die with the worker (and refuses to go
// on if it is already gone) and the subreaper of what it starts.
func bindToParent() error {
	parent := os.Getppid()
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(syscall.SIGKILL), 0, 0, 0); err != nil {
		return fmt.Errorf("parent-death signal: %w", err)
	}
	if os.Getppid() != parent {
		return errors.New("the worker is gone")
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("child subreaper: %w", err)
	}
	return nil
}

// startConfine starts the confine stage (exe, with p and the rest of the
// launcher's args), with p.NoExec in a user and mount namespace of its
// own, where the work dir and home can be made noexec (noexec.go).
func startConfine(exe string, p Policy, rest []string) (*exec.Cmd, error) {
	policy, _ := json.Marshal(p)
	cmd := exec.Command(exe, append([]string{confineArg, string(policy)}, rest...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Dir = p.WorkDir
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if p.NoExec {
		cmd.SysProcAttr = namespaceAttr()
	}
	return cmd, cmd.Start()
}

// wait waits for cmd and returns its exit code; a signal to this process
// kills it first, and the code says so.
func wait(cmd *exec.Cmd, sigs <-chan os.Signal) int {
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return exitCode(cmd, err)
	case sig := <-sigs:
		_ = cmd.Process.Kill()
		<-done
		return 128 + int(sig.(syscall.Signal))
	}
}

func exitCode(cmd *exec.Cmd, err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	if err != nil {
		return exitExec
	}
	return cmd.ProcessState.ExitCode()
}

// KillDescendants kills and reaps every child of this process, again and
// again as the children of killed ones are reparented here (this process
// must be a child subreaper), until none is left or limit passes.
func KillDescendants(limit time.Duration) {
	deadline := time.Now().Add(limit)
	self := os.Getpid()
	for time.Now().Before(deadline) {
		kids := proc.Children(self)
		for _, pid := range kids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		reaped := false
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
			reaped = true
		}
		if len(kids) == 0 && !reaped {
			if _, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil); errors.Is(err, syscall.ECHILD) {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// workDirAccess is what a command may do in its work dir: everything but
// executing (a program or a library it wrote there) and linking files to
// elsewhere.
const workDirAccess = landlock.AccessFSSet(ll.AccessFSReadFile | ll.AccessFSReadDir | ll.AccessFSWriteFile |
	ll.AccessFSRemoveDir | ll.AccessFSRemoveFile | ll.AccessFSMakeDir | ll.AccessFSMakeReg |
	ll.AccessFSMakeSym | ll.AccessFSMakeFifo | ll.AccessFSMakeSock | ll.AccessFSTruncate)

// Restrict applies p to this process (and what it starts from now on).
func Restrict(p Policy) error {
	cfg := landlock.V11
	if p.Network {
		cfg.HandledAccessNet = 0 // TCP (and on new kernels UDP) left alone
	}
	rules := []landlock.Rule{
		landlock.RODirs(existing(append(systemDirs, p.Read...))...),
		landlock.PathAccess(workDirAccess, p.WorkDir),
		landlock.RWFiles("/dev/null").IgnoreIfMissing(),
	}
	if p.Home != "" && p.Home != p.WorkDir {
		rules = append(rules, landlock.PathAccess(workDirAccess, p.Home))
	}
	if err := cfg.BestEffort().Restrict(rules...); err != nil {
		return fmt.Errorf("landlock: %w", err)
	}
	if !p.Network && seccomp.Supported() {
		return refuseNetwork()
	}
	return nil
}

func existing(dirs []string) []string {
	var out []string
	for _, d := range dirs {
		if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			out = append(out, d)
		}
	}
	return out
}

// Probe reports what this kernel lets a confined command be denied: the
// Landlock ABI (0: none), whether seccomp filters work, and in words what
// that means with the network on or off.
func Probe(network bool) Support {
	s := Support{Seccomp: seccomp.Supported()}
	var why string
	s.NoExec, why = probeNoExec()
	if v, err := ll.LandlockGetABIVersion(); err == nil && v > 0 {
		s.LandlockABI = v
	}
	var limits []string
	switch v := s.LandlockABI; {
	case v < 1:
		limits = append(limits, "Landlock is not available: commands can read and write anywhere this process can")
	case v < 4:
		limits = append(limits, "Landlock ABI "+strconv.Itoa(v)+": files are confined, TCP is not (ABI 4, Linux 6.7), nor signals and abstract sockets (ABI 6)")
	case v < 6:
		limits = append(limits, "Landlock ABI "+strconv.Itoa(v)+": files and TCP are confined, signals and abstract sockets are not (ABI 6)")
	default:
		limits = append(limits, "Landlock ABI "+strconv.Itoa(v)+": files, TCP, signals and abstract sockets are confined")
	}
	switch {
	case network:
		limits = append(limits, "network on: commands reach whatever this process can, the metadata server included")
	case s.Seccomp:
		limits = append(limits, "network off: seccomp refuses every socket but Unix and netlink ones")
	case s.LandlockABI >= 4:
		limits = append(limits, "network off: Landlock refuses TCP; seccomp is not available, so UDP is open")
	default:
		limits = append(limits, "network off, but neither seccomp nor Landlock's TCP rules are available: the network is open")
	}
	if s.NoExec {
		limits = append(limits, "the work dir and home are noexec in a namespace of the command's own: no library of the job's files can be mapped")
	} else {
		limits = append(limits, "no user namespace ("+strings.TrimSpace(why)+"): a library of the job's files could be mapped executable by an allowed program, which the argument allowlists and the empty home are left to prevent")
	}
	limits = append(limits, "every process a command starts ends with its chunk")
	s.Limits = strings.Join(limits, "; ")
	return s
}

// Support is what Probe found.
type Support struct {
	LandlockABI int    // 0: no Landlock
	Seccomp     bool   // seccomp filters can be installed
	NoExec      bool   // the work dir and home can be made noexec (a user namespace)
	Limits      string // what a command is and is not denied, in words
}

// Complete says whether everything the sandbox means to deny is denied.
func (s Support) Complete() bool { return s.LandlockABI >= 6 && s.Seccomp && s.NoExec }

// ErrUnsupported is returned by Self where commands cannot be confined (not
// Linux).
var ErrUnsupported = errors.New("sandbox: commands are confined on Linux only")
