package cmd

import (
	"strings"

	"github.com/spf13/cobra"
)

// completeJobNames offers the configured job names (and discovered
// heartbeat jobs) for shell completion, with their bare names too.
func completeJobNames(g *globalOptions) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return func(c *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		a, err := g.loadApp()
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		defer a.close()
		seen := map[string]bool{}
		var out []string
		add := func(s string) {
			if !seen[s] && strings.HasPrefix(strings.ToLower(s), strings.ToLower(toComplete)) {
				seen[s] = true
				out = append(out, s)
			}
		}
		for _, j := range a.allJobs(c.Context()) {
			add(j.Name)
			if _, name, ok := strings.Cut(j.Name, ":"); ok {
				add(name)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}
