package jobs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

func init() { register("command", Type{New: func() Spec { return &Command{} }}) }

// maxCommandOutput caps what a command job keeps of its standard output,
// and separately of its standard error.
const maxCommandOutput = 64 << 10

// Command runs a program and reads it as a Nagios plugin: exit status 0 OK,
// 1 WARNING, 2 CRITICAL, 3 UNKNOWN, anything else (4-255, killed by a
// signal) UNKNOWN, as Icinga maps it. The message is the first line of
// standard output before '|', without a status word the plugin put in front
// of it; the performance data and the long output (the lines after the
// first) are kept apart. Standard error goes to the result's Detail.
type Command struct {
	Line  string `cfg:"command,required"`
	Shell bool   `cfg:"shell"`
	Argv  []string
}

// Validate splits the command line into argv (no shell unless Shell).
func (c *Command) Validate() error {
	if c.Line == "" && len(c.Argv) > 0 {
		return nil // argv given directly (checker check command -- …)
	}
	if c.Shell {
		if strings.TrimSpace(c.Line) == "" {
			return &KeyError{Key: "command", Err: errors.New("empty command")}
		}
		c.Argv = []string{"/bin/sh", "-c", c.Line}
		return nil
	}
	argv, err := SplitArgs(c.Line)
	if err != nil {
		return &KeyError{Key: "command", Err: err}
	}
	if len(argv) == 0 {
		return &KeyError{Key: "command", Err: errors.New("empty command")}
	}
	c.Argv = argv
	return nil
}

// Target is the command line.
func (c *Command) Target() string {
	if c.Line == "" {
		return strings.Join(c.Argv, " ")
	}
	return c.Line
}

// Check runs the command in a process group of its own, with the job
// environment (env.JobEnviron), and reads its result the Nagios way. The
// whole group is killed when the command's first process exits or the
// deadline passes, and, under env.Supervisor, when checker dies.
func (c *Command) Check(ctx context.Context, env *Env) Result {
	if env == nil {
		env = &Env{}
	}
	path, err := exec.LookPath(c.Argv[0])
	if err != nil {
		return Resultf(Unknown, "cannot run %s: %v", c.Argv[0], err)
	}
	return pluginResult(c.Argv[0], runGroup(ctx, env, path, c.Argv), ctx.Err())
}

// procRun is how one run of a command went.
type procRun struct {
	stdout, stderr       []byte
	stdoutCut, stderrCut bool // there was more than maxCommandOutput
	// held says an escaped process (one that left the group) kept the
	// output open, so reading stopped outputGrace after the job ended.
	held     bool
	killed   bool // killed by checker: the deadline passed or checker stops
	exitCode int
	signal   syscall.Signal // the signal that ended the job, or 0
	err      error          // the job could not be started or supervised
}

// outputGrace is how long the output is still read after the job's process
// group was killed: only a process that left the group can hold it longer.
const outputGrace = time.Second

// runGroup runs argv (argv[0] resolved to path) as the leader of a new
// process group, or under the supervisor, which then leads the group.
//
// The group is killed (SIGKILL) when the first process exits, so nothing
// the job started outlives it, and when ctx is done. To make sure the group
// id still names this job's group when it is killed, the leader is not
// reaped until then (waitid with WNOWAIT).
//
// PR_SET_PDEATHSIG fires when the thread that started the child exits, not
// the process (golang/go#27505), and the Go runtime ends a thread when a
// goroutine locked to it returns. So the goroutine that starts the child
// stays locked to its thread until the child is reaped; the supervisor also
// polls its parent pid in case the signal is lost anyway.
func runGroup(ctx context.Context, env *Env, path string, argv []string) (run procRun) {
	outR, outW, err := os.Pipe()
	if err != nil {
		return procRun{err: err}
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return procRun{err: err}
	}
	var (
		cmd              *exec.Cmd
		statusR, statusW *os.File
		deathSig         = syscall.SIGKILL
	)
	if sup := env.Supervisor; len(sup) > 0 {
		if statusR, statusW, err = os.Pipe(); err != nil {
			outR.Close()
			outW.Close()
			errR.Close()
			errW.Close()
			return procRun{err: err}
		}
		args := append(sup[1:len(sup):len(sup)], "--parent", strconv.Itoa(os.Getpid()))
		if dl, ok := ctx.Deadline(); ok {
			// The supervisor's own deadline is a backstop for a checker
			// that is alive but stuck; checker kills the group itself.
			args = append(args, "--timeout", (time.Until(dl) + time.Second).Round(time.Millisecond).String())
		}
		args = append(append(args, "--", path), argv[1:]...)
		cmd = exec.Command(sup[0], args...)
		cmd.ExtraFiles = []*os.File{statusW}
		deathSig = syscall.SIGTERM // caught by the supervisor, which kills the group
	} else {
		cmd = &exec.Cmd{Path: path, Args: argv}
	}
	cmd.Env = env.JobEnviron()
	cmd.Stdout, cmd.Stderr = outW, errW
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: deathSig}

	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	err = cmd.Start()
	outW.Close()
	errW.Close()
	if statusW != nil {
		statusW.Close()
		defer statusR.Close()
	}
	stdout, stderr := readCapped(outR), readCapped(errR)
	defer func() {
		run.stdout, run.stdoutCut, run.stderr, run.stderrCut, run.held = collect(stdout, stderr)
	}()
	if err != nil {
		return procRun{err: err}
	}

	pgid := cmd.Process.Pid
	var (
		mu     sync.Mutex // guards reaped
		reaped bool
	)
	killGroup := func() {
		mu.Lock()
		defer mu.Unlock()
		if !reaped {
			_ = syscall.Kill(-pgid, syscall.SIGKILL) // ESRCH: nobody left
		}
	}
	stop := context.AfterFunc(ctx, killGroup)
	waitErr := waitExited(pgid)
	killGroup() // what the job left behind
	run.killed = !stop()
	mu.Lock()
	reaped = true
	mu.Unlock()
	err = cmd.Wait()
	if waitErr != nil && err == nil {
		err = waitErr
	}

	if statusR != nil {
		line, _ := io.ReadAll(io.LimitReader(statusR, 4096))
		run.exitCode, run.signal, run.err = parseSupervisorStatus(string(line), cmd.ProcessState)
		return run
	}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		run.exitCode = exit.ExitCode()
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			run.signal = ws.Signal()
		}
	default:
		run.err = err
	}
	return run
}

// waitExited blocks until process pid has exited, leaving it unreaped
// (waitid with WNOWAIT), so that its pid, and so its group id, cannot be
// reused until cmd.Wait reaps it.
func waitExited(pid int) error {
	const pPID = 1     // P_PID
	var info [128]byte // siginfo_t
	for {
		_, _, errno := syscall.Syscall6(syscall.SYS_WAITID, pPID, uintptr(pid), uintptr(unsafe.Pointer(&info[0])),
			syscall.WEXITED|syscall.WNOWAIT, 0, 0)
		if errno != syscall.EINTR {
			if errno != 0 {
				return fmt.Errorf("waiting for pid %d: %w", pid, errno)
			}
			return nil
		}
	}
}

// captured is output being read from a pipe, up to maxCommandOutput.
type captured struct {
	r    *os.File
	buf  capped
	done chan struct{}
}

// readCapped reads r until EOF in the background, keeping the first
// maxCommandOutput bytes and draining the rest so the writer never blocks.
func readCapped(r *os.File) *captured {
	c := &captured{r: r, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		_, _ = io.Copy(&c.buf, r)
	}()
	return c
}

// collect waits for both outputs, giving up outputGrace after it was
// called: the job's group is dead by then, so only an escaped process can
// still hold a pipe open.
func collect(stdout, stderr *captured) (out []byte, outCut bool, errOut []byte, errCut bool, held bool) {
	timer := time.NewTimer(outputGrace)
	defer timer.Stop()
	for _, c := range []*captured{stdout, stderr} {
		select {
		case <-c.done:
		case <-timer.C:
			held = true
			stdout.r.Close() // unblocks the reads
			stderr.r.Close()
			<-c.done
		}
	}
	stdout.r.Close()
	stderr.r.Close()
	<-stdout.done
	<-stderr.done
	return stdout.buf.Bytes(), stdout.buf.cut, stderr.buf.Bytes(), stderr.buf.cut, held
}

// capped is a buffer that keeps the first maxCommandOutput bytes and notes
// whether there was more. The buffer is a named field, not embedded: an
// embedded bytes.Buffer would promote ReadFrom, which io.Copy prefers to
// Write, and the cap would be bypassed.
type capped struct {
	buf bytes.Buffer
	cut bool
}

func (c *capped) Write(p []byte) (int, error) {
	room := maxCommandOutput - c.buf.Len()
	if room < len(p) {
		c.cut = true
	}
	if room > 0 {
		c.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (c *capped) Bytes() []byte { return c.buf.Bytes() }

// The supervisor reports how the job ended in one line on its status pipe
// (fd 3): "exit N", "signal N" or "error TEXT".

func formatSupervisorStatus(ps *os.ProcessState) string {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return fmt.Sprintf("signal %d", int(ws.Signal()))
	}
	return fmt.Sprintf("exit %d", ps.ExitCode())
}

// parseSupervisorStatus reads the supervisor's report; ps is how the
// supervisor itself ended, which tells when it could not report.
func parseSupervisorStatus(line string, ps *os.ProcessState) (code int, sig syscall.Signal, err error) {
	word, arg, _ := strings.Cut(strings.TrimSpace(line), " ")
	n, nerr := strconv.Atoi(arg)
	switch {
	case word == "exit" && nerr == nil:
		return n, 0, nil
	case word == "signal" && nerr == nil:
		return -1, syscall.Signal(n), nil
	case word == "error":
		return -1, 0, errors.New(arg)
	case line != "":
		return -1, 0, fmt.Errorf("the command supervisor reported %q", line)
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		// Killed before it could report: by checker at the deadline (the
		// caller knows that), or by someone else.
		return -1, ws.Signal(), nil
	}
	return -1, 0, fmt.Errorf("the command supervisor ended without a report (%v); see its standard error", ps)
}

// Supervise is the supervisor process: it runs argv[0] (a path) with
// argv, standard output and error passed through, in its own process group,
// whose leader it must be. It kills the whole group (itself included) when
// the job's first process exits, after writing how it ended to status; when
// it gets SIGTERM, SIGINT or SIGHUP (checker sets SIGTERM as its parent-death
// signal); when its parent is no longer parent; and when timeout (if > 0)
// passes. It returns only on a usage error, with the exit code to use.
func Supervise(parent int, timeout time.Duration, argv []string, status io.Writer, stderr io.Writer) int {
	if len(argv) == 0 || parent <= 0 {
		fmt.Fprintln(stderr, "checker: the supervisor needs --parent PID and a command")
		return 2
	}
	if syscall.Getpgrp() != os.Getpid() {
		// kill(0) would hit whoever started it from a shell.
		fmt.Fprintln(stderr, "checker: the supervisor must lead its own process group; checker starts it for command jobs")
		return 2
	}
	// The job's PR_SET_PDEATHSIG is tied to the thread that starts it.
	runtime.LockOSThread()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	killGroup := func() {
		_ = syscall.Kill(0, syscall.SIGKILL)
		os.Exit(137) // not reached: this process is in the group
	}
	if os.Getppid() != parent {
		killGroup() // checker died before the death signal was armed
	}
	cmd := &exec.Cmd{Path: argv[0], Args: argv, Stdout: os.Stdout, Stderr: os.Stderr,
		SysProcAttr: &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(status, "error %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
		killGroup()
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	var deadline <-chan time.Time
	if timeout > 0 {
		deadline = time.After(timeout)
	}
	poll := time.NewTicker(250 * time.Millisecond)
	for {
		select {
		case <-exited:
			fmt.Fprintln(status, formatSupervisorStatus(cmd.ProcessState))
			killGroup()
		case <-sigs:
			killGroup()
		case <-deadline:
			killGroup()
		case <-poll.C:
			if os.Getppid() != parent {
				killGroup()
			}
		}
	}
}

// pluginResult reads a finished run as a Nagios plugin's result. ctxErr is
// why the run's context ended, if it did.
func pluginResult(name string, run procRun, ctxErr error) Result {
	if run.err != nil && !run.killed {
		return Result{Status: Unknown, Message: fmt.Sprintf("cannot run %s: %v", name, run.err), Detail: runDetail(run)}
	}
	out := parsePluginOutput(run.stdout)
	if run.killed {
		why := "killed at the timeout"
		if errors.Is(ctxErr, context.Canceled) {
			why = "killed: checker is stopping"
		}
		return Result{Status: Critical, Message: fmt.Sprintf("%s: %s", name, why),
			Perfdata: out.perfdata, LongOutput: joinLines(out.text, out.long), Detail: runDetail(run)}
	}
	status, note := Unknown, ""
	switch {
	case run.signal != 0:
		note = fmt.Sprintf("killed by signal %d (%v)", int(run.signal), run.signal)
	case run.exitCode >= 0 && run.exitCode <= 3:
		status = Status(run.exitCode)
	default:
		note = fmt.Sprintf("exit status %d", run.exitCode)
	}
	msg := stripStatusWord(out.text, status)
	if msg == "" {
		msg = firstLine(string(run.stderr))
	}
	switch {
	case msg == "" && note != "":
		msg = fmt.Sprintf("%s %s", name, note)
	case msg == "":
		msg = fmt.Sprintf("%s exited %d", name, run.exitCode)
	case note != "":
		msg = fmt.Sprintf("%s (%s)", msg, note)
	}
	return Result{Status: status, Message: msg, Perfdata: out.perfdata, LongOutput: out.long, Detail: runDetail(run)}
}

// runDetail is the diagnostic text of a run: standard error and notes on
// what was not kept.
func runDetail(run procRun) string {
	var b strings.Builder
	if s := strings.TrimRight(toText(run.stderr), "\n"); s != "" {
		b.WriteString("Standard error:\n" + s + "\n")
		if run.stderrCut {
			fmt.Fprintf(&b, "(standard error cut at %d KiB)\n", maxCommandOutput>>10)
		}
	}
	if run.stdoutCut {
		fmt.Fprintf(&b, "Output cut at %d KiB.\n", maxCommandOutput>>10)
	}
	if run.held {
		fmt.Fprintf(&b, "A process that left the job's process group kept its output open; stopped reading %s after the job ended.\n", outputGrace)
	}
	return b.String()
}

// pluginOutput is a plugin's standard output taken apart.
type pluginOutput struct {
	text     string // the first line before '|'
	perfdata string // after '|' on the first line and after the first '|' of the long output, space-separated
	long     string // the lines after the first, up to a '|'
}

// parsePluginOutput splits output by the Monitoring Plugins guidelines:
//
//	TEXT | PERFDATA
//	LONG TEXT LINE 1
//	LONG TEXT LINE 2 | PERFDATA LINE 2
//	PERFDATA LINE 3
func parsePluginOutput(b []byte) pluginOutput {
	s := strings.ReplaceAll(toText(b), "\r\n", "\n")
	first, rest, _ := strings.Cut(strings.TrimLeft(s, "\n"), "\n")
	var out pluginOutput
	var perf []string
	text, p, ok := strings.Cut(first, "|")
	out.text = strings.TrimSpace(text)
	if ok {
		perf = append(perf, strings.TrimSpace(p))
	}
	long, p, ok := strings.Cut(rest, "|")
	out.long = strings.TrimRight(long, " \t\n")
	if ok {
		perf = append(perf, strings.Fields(p)...)
	}
	out.perfdata = strings.TrimSpace(strings.Join(perf, " "))
	return out
}

// toText is b as valid UTF-8.
func toText(b []byte) string { return strings.ToValidUTF8(string(b), "\uFFFD") }

func joinLines(a, b string) string {
	if a == "" || b == "" {
		return a + b
	}
	return a + "\n" + b
}

// stripStatusWord removes a status word the plugin put in front of its
// message, when it is the word for status (the exit code decides; a word
// that disagrees stays, as a clue): "DISK CRITICAL - free space…",
// "CRITICAL - …", "PROCS WARNING: …" and "OK: …" lose everything up to the
// text. Plugins print the service name and the status word in capitals; a
// service name is at most three words. A prefix repeated by a wrapper
// ("CRITICAL - DISK CRITICAL - free space…", as a plugin run through
// another plugin prints it) goes as well.
func stripStatusWord(msg string, status Status) string {
	text, bare := stripStatusWordOnce(msg, status)
	if bare && text != msg {
		text, _ = stripStatusWordOnce(text, status)
	}
	return text
}

// stripStatusWordOnce strips one prefix; bare says whether it was the
// status word alone, with no service name before it.
func stripStatusWordOnce(msg string, status Status) (string, bool) {
	word := status.String()
	rest := msg
	for i := range 4 {
		tok, after, _ := strings.Cut(rest, " ")
		if tok == word || tok == word+":" {
			var text string
			var ok bool
			if tok == word {
				text, ok = strings.CutPrefix(after, "- ")
				if !ok && (after == "-" || after == ":") {
					text, ok = "", true
				} else if !ok {
					text, ok = strings.CutPrefix(after, ": ")
				}
			} else {
				text, ok = after, true
			}
			if text = strings.TrimSpace(text); ok && text != "" {
				return text, i == 0
			}
			return msg, false
		}
		if !isServiceWord(tok) {
			return msg, false
		}
		rest = after
	}
	return msg, false
}

// isServiceWord says whether w can be (part of) a plugin's service name:
// capitals, digits and _ . / -, as in DISK, FILE_AGE, CHECK_NRPE.
func isServiceWord(w string) bool {
	if w == "" {
		return false
	}
	for _, r := range w {
		if !(r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_./-", r)) {
			return false
		}
	}
	return true
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}

// SplitArgs splits a command line into words the way a POSIX shell would
// for plain words, 'single' and "double" quotes and backslash escapes, but
// without expansions of any kind.
func SplitArgs(s string) ([]string, error) {
	var (
		args    []string
		cur     strings.Builder
		inWord  bool
		quote   rune
		escaped bool
	)
	for _, r := range s {
		switch {
		case escaped:
			// Inside double quotes a backslash escapes only $ ` " \ and
			// newline; before anything else it stays (POSIX).
			if quote == '"' && !strings.ContainsRune("$`\"\\\n", r) {
				cur.WriteRune('\\')
			}
			cur.WriteRune(r)
			escaped = false
		case quote == '\'':
			if r == '\'' {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case quote == '"':
			switch r {
			case '"':
				quote = 0
			case '\\':
				escaped = true
			default:
				cur.WriteRune(r)
			}
		case r == '\\':
			escaped, inWord = true, true
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t' || r == '\n':
			if inWord {
				args = append(args, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unclosed %c quote in %q", quote, s)
	}
	if escaped {
		return nil, fmt.Errorf("trailing backslash in %q", s)
	}
	if inWord {
		args = append(args, cur.String())
	}
	return args, nil
}
