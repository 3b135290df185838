//go:build !linux

package redistest

import "os/exec"

// dieWithParent does nothing where the kernel offers no parent-death
// signal; t.Cleanup still kills the server when the test ends normally.
func dieWithParent(*exec.Cmd) {}
