package jobs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

func init() { register("command", Type{New: func() Spec { return &Command{} }}) }

// maxCommandOutput caps what a command job keeps of its output.
const maxCommandOutput = 64 << 10

// Command runs a program and reads its exit status the Nagios way: 0 OK,
// 1 WARNING, 2 CRITICAL, 3 UNKNOWN (anything else counts as CRITICAL). The
// first line of output is the message.
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

// Check runs the command in its own process group, killed whole at the
// deadline so that children do not outlive it.
func (c *Command) Check(ctx context.Context, _ *Env) Result {
	cmd := exec.CommandContext(ctx, c.Argv[0], c.Argv[1:]...)
	var out capped
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	msg := firstLine(out.Bytes())
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return Result{Status: Critical, Message: fmt.Sprintf("%s: killed at the timeout", c.Argv[0]), Detail: out.String()}
	case err == nil || errors.Is(err, exec.ErrWaitDelay):
		// ErrWaitDelay: the command exited 0 but a child it left behind
		// still held its output open; the exit status is what counts.
		if msg == "" {
			msg = c.Argv[0] + " exited 0"
		}
		return Result{Status: OK, Message: msg, Detail: out.String()}
	case errors.As(err, &exit):
		code := exit.ExitCode()
		status := Critical
		switch code {
		case 1:
			status = Warning
		case 2:
			status = Critical
		case 3:
			status = Unknown
		}
		if msg == "" {
			msg = fmt.Sprintf("%s exited %d", c.Argv[0], code)
		}
		return Result{Status: status, Message: msg, Detail: out.String()}
	default:
		return Resultf(Unknown, "cannot run %s: %v", c.Argv[0], err)
	}
}

func firstLine(b []byte) string {
	s := strings.TrimSpace(string(b))
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}

// capped is a buffer that keeps the first maxCommandOutput bytes. The
// buffer is a named field, not embedded: an embedded bytes.Buffer would
// promote ReadFrom, which io.Copy (used by os/exec) prefers to Write, and
// the cap would be bypassed.
type capped struct{ buf bytes.Buffer }

func (c *capped) Write(p []byte) (int, error) {
	if room := maxCommandOutput - c.buf.Len(); room > 0 {
		c.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (c *capped) Bytes() []byte  { return c.buf.Bytes() }
func (c *capped) String() string { return c.buf.String() }

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
