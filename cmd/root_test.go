package cmd

import (
	"bytes"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

func TestTyposExitTwoWithSuggestion(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		code    int
		stderr  []string
		oneLine string // with exit 3: the single UNKNOWN line on stdout
	}{
		{"config subcommand", []string{"config", "valdate"}, 2, []string{`unknown command "valdate" for "checker config"`, "Did you mean this?\n\tvalidate\n", "checker config --help"}, ""},
		{"heartbeat subcommand", []string{"heartbeat", "pubish"}, 2, []string{`unknown command "pubish" for "checker heartbeat"`, "\tpublish\n"}, ""},
		{"completion subcommand", []string{"completion", "bsh"}, 2, []string{`unknown command "bsh"`, "\tbash\n"}, ""},
		{"top-level command", []string{"cronn", "minute"}, 2, []string{`unknown command "cronn" for "checker"`, "\tcron\n"}, ""},
		{"nothing close", []string{"config", "frobnicate"}, 2, []string{`unknown command "frobnicate"`, "checker config --help"}, ""},
		{"flag", []string{"crontab", "--instal"}, 2, []string{"unknown flag: --instal", "Did you mean this?\n\t--install\n"}, ""},
		{"inherited flag", []string{"cron", "--nomial", "minute"}, 2, []string{"unknown flag: --nomial", "\t--nomail\n"}, ""},
		{"shorthand flag", []string{"list", "-x"}, 2, []string{"unknown shorthand flag", "checker list --help"}, ""},
		{"help topic", []string{"help", "config", "valdate"}, 2, []string{`unknown command "valdate" for "checker config"`, "\tvalidate\n"}, ""},
		{"subcommand without its group", []string{"valdate"}, 2, []string{`unknown command "valdate" for "checker"`, "\tconfig validate\n"}, ""},
		{"help subcommand without its group", []string{"help", "pubish"}, 2, []string{"\theartbeat publish\n"}, ""},
		{"help top-level topic", []string{"help", "cronn"}, 2, []string{`unknown command "cronn" for "checker"`, "\tcron\n"}, ""},
		{"check keeps UNKNOWN", []string{"check", "tcpx", "127.0.0.1:1"}, 3, []string{`unknown command "tcpx" for "checker check"`, "\ttcp\n"}, `CHECK UNKNOWN - unknown command "tcpx" for "checker check"` + "\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := runCLI(t, nil, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tc.code, errOut)
			}
			for _, want := range tc.stderr {
				if !strings.Contains(errOut, want) {
					t.Errorf("stderr lacks %q:\n%s", want, errOut)
				}
			}
			if out != tc.oneLine {
				t.Errorf("stdout %q, want %q", out, tc.oneLine)
			}
		})
	}
}

func TestGroupWithoutSubcommandPrintsHelp(t *testing.T) {
	for _, group := range []string{"config", "heartbeat", "completion"} {
		t.Run(group, func(t *testing.T) {
			out, errOut, code := runCLI(t, nil, group)
			if code != 0 || !strings.Contains(out, "Available Commands:") || errOut != "" {
				t.Errorf("exit %d, stdout %q, stderr %q: want the group's help and exit 0", code, out, errOut)
			}
		})
	}
}

// TestEveryGroupRejectsUnknownSubcommands walks the real tree: a group that
// cobra would let print help and exit 0 on a typo is a regression, whoever
// adds it.
func TestEveryGroupRejectsUnknownSubcommands(t *testing.T) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.HasSubCommands() {
			if !c.Runnable() {
				t.Errorf("%q has subcommands but no Run: a typo would exit 0", c.CommandPath())
			}
			var out, errb bytes.Buffer
			root := c.Root()
			root.SetOut(&out)
			root.SetErr(&errb)
			path := strings.Fields(c.CommandPath())[1:]
			root.SetArgs(append(path, "zzqx"))
			if _, err := root.ExecuteC(); err == nil || !isUsageError(err) {
				t.Errorf("%q zzqx: err %v, want an unknown-command usage error", c.CommandPath(), err)
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(NewRootCommand())
}

// TestGroupAddedLater: the rule is generic, not a list of today's groups.
func TestGroupAddedLater(t *testing.T) {
	root := &cobra.Command{Use: "checker", SilenceErrors: true, SilenceUsage: true}
	widget := &cobra.Command{Use: "widget", Short: "widgets"}
	widget.AddCommand(&cobra.Command{Use: "frob", Run: func(*cobra.Command, []string) {}})
	root.AddCommand(widget)
	rejectUnknownSubcommands(root)
	root.SetOut(&bytes.Buffer{})
	root.SetArgs([]string{"widget", "frbo"})
	_, err := root.ExecuteC()
	if err == nil || !strings.Contains(err.Error(), "Did you mean this?\n\tfrob\n") || !isUsageError(err) {
		t.Errorf("err = %v, want an unknown-command error suggesting frob", err)
	}
}

func TestEditDistance(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"", "abc", 3},
		{"valdate", "validate", 1},
		{"pubish", "publish", 1},
		{"nomial", "nomail", 2},
		{"kitten", "sitting", 3},
	}
	for _, tc := range tests {
		t.Run(tc.a+"/"+tc.b, func(t *testing.T) {
			if got := editDistance(tc.a, tc.b); got != tc.want {
				t.Errorf("editDistance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
			}
			if got := editDistance(tc.b, tc.a); got != tc.want {
				t.Errorf("editDistance(%q, %q) = %d, want %d", tc.b, tc.a, got, tc.want)
			}
		})
	}
}

func TestVersionFlag(t *testing.T) {
	out, _, code := runCLI(t, nil, "--version")
	want, _, _ := runCLI(t, nil, "version")
	if code != 0 || out != want || !strings.HasPrefix(out, "checker ") {
		t.Errorf("--version: exit %d, %q; want %q", code, out, want)
	}
}
