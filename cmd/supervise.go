package cmd

import (
	"errors"
	"os"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"checker/jobs"
)

func init() { extraCommands = append(extraCommands, newSuperviseCommand) }

// superviseCommand is the hidden command that runs one command job under a
// supervisor process (jobs.Supervise). It is not for people; checker starts
// it, in a process group of its own, for every command job.
const superviseCommand = "__supervise"

func newSuperviseCommand(g *globalOptions) *cobra.Command {
	var (
		parent  int
		timeout time.Duration
	)
	c := &cobra.Command{
		Use:    superviseCommand + " --parent PID [--timeout D] -- PATH [ARGS...]",
		Short:  "Run one command job and kill its process group when checker dies (started by checker)",
		Hidden: true,
		Args:   cobra.MinimumNArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			// checker passes the status pipe as the first extra file (fd 3);
			// anything else there is not ours to write to.
			var st syscall.Stat_t
			if err := syscall.Fstat(3, &st); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFIFO {
				return &exitError{code: exitUsage, err: errors.New("the supervisor reports on a pipe at fd 3; checker starts it for command jobs")}
			}
			status := os.NewFile(3, "supervisor status")
			if code := jobs.Supervise(parent, timeout, args, status, g.stderr); code != 0 {
				return &exitError{code: code}
			}
			return nil
		},
	}
	c.Flags().IntVar(&parent, "parent", 0, "pid of the checker process that started the job")
	c.Flags().DurationVar(&timeout, "timeout", 0, "kill the job's process group after this long")
	return c
}

// supervisorArgv is the argv prefix that runs a command job under the
// supervisor: this very binary (through /proc/self/exe, which still works
// when the file was replaced by an upgrade during the run) with the hidden
// command. Nil when the binary cannot be found, which runs jobs directly.
func supervisorArgv() []string {
	exe := "/proc/self/exe"
	if _, err := os.Stat(exe); err != nil {
		if exe, err = os.Executable(); err != nil {
			return nil
		}
	}
	return []string{exe, superviseCommand}
}
