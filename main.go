// Command checker is a cron-driven monitor that checks ports, web
// endpoints, certificates, heartbeats, its own mail path and its peers, and
// mails the admins by rules that keep alerts useful.
package main

import (
	"os"

	"checker/cmd"
)

func main() { os.Exit(cmd.Execute()) }
