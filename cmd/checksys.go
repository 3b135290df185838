package cmd

import (
	"time"

	"github.com/spf13/cobra"

	"checker/jobs"
)

func init() {
	extraChecks = append(extraChecks, newCheckEmailCommand, newCheckPeerCommand)
}

func newCheckEmailCommand(g *globalOptions, o *checkOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "email",
		Short: "Run the email self-check once: send a probe, find it over IMAP, delete it",
		Long: `Sends a probe mail from [email] user to itself, looks for it over IMAP (INBOX,
or trashfolder when ideletesentmessagesautomatically is set) for up to
selfcheck_wait, and deletes it. Prints the session log with -d.`,
		Example: "  checker -f /etc/checker/settings.cfg check email",
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			a, err := g.loadApp()
			if err != nil {
				return printCheckError(g, o, "email", "", err)
			}
			defer a.close()
			spec := jobs.NewEmailCheck(a.settings)
			if o.timeout < a.settings.Email.SelfCheckWait {
				o.timeout = a.settings.Email.SelfCheckWait + 30*time.Second
			}
			return runCheckEnv(c.Context(), g, o, "email", spec, a.newEnv())
		},
	}
}

func newCheckPeerCommand(g *globalOptions, o *checkOptions) *cobra.Command {
	return &cobra.Command{
		Use:     "peer URL",
		Short:   "Ask a peer checker whether it runs its jobs and can send mail",
		Example: "  checker check peer http://other-monitor.example.com:5000/",
		Args:    cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return runCheck(c.Context(), g, o, "peer", &jobs.Peer{URL: args[0]})
		},
	}
}
