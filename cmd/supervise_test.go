package cmd

import (
	"os"
	"testing"
)

// TestMain lets the test binary be the supervisor of the command jobs that
// the in-process commands start: supervisorArgv re-executes this binary
// (/proc/self/exe) with the hidden supervise command.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == superviseCommand {
		g := &globalOptions{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}
		os.Exit(execute(g, os.Args[1:]))
	}
	os.Exit(m.Run())
}
