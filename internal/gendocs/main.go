// Command gendocs writes checker's man pages and shell completions from
// its command tree. It is run by `make build` (go run ./internal/gendocs)
// and lives apart from the checker binary so that cobra's doc package and
// its markdown renderer never cost a cron run any start-up time.
//
// Usage:
//
//	go run ./internal/gendocs -out bin [-version v1.2] [-date 2006-01-02]
//
// writes OUT/man/man1/checker*.1 and OUT/completions/{checker.bash,
// _checker, checker.fish}. The date defaults to $SOURCE_DATE_EPOCH, else
// today, so builds can be reproducible.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"checker/cmd"
)

func main() {
	out := flag.String("out", "bin", "directory to write man/ and completions/ under")
	version := flag.String("version", "", "version for the man pages' footer")
	date := flag.String("date", "", "date for the man pages (YYYY-MM-DD; default $SOURCE_DATE_EPOCH, else today)")
	flag.Parse()
	when, err := docDate(*date, os.Getenv("SOURCE_DATE_EPOCH"), time.Now)
	if err == nil {
		err = generate(cmd.NewRootCommand(), *out, *version, when)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "gendocs: %v\n", err)
		os.Exit(1)
	}
}

// docDate is the date printed in the man pages.
func docDate(date, epoch string, now func() time.Time) (time.Time, error) {
	switch {
	case date != "":
		t, err := time.Parse(time.DateOnly, date)
		if err != nil {
			return time.Time{}, fmt.Errorf("-date %q: want YYYY-MM-DD", date)
		}
		return t, nil
	case epoch != "":
		sec, err := strconv.ParseInt(epoch, 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH %q: want seconds since 1970", epoch)
		}
		return time.Unix(sec, 0).UTC(), nil
	}
	return now().UTC(), nil
}

// generate writes the man pages and the bash, zsh and fish completions of
// root under out.
func generate(root *cobra.Command, out, version string, when time.Time) error {
	root.DisableAutoGenTag = true // no "generated on <date>" churn
	manDir := filepath.Join(out, "man", "man1")
	compDir := filepath.Join(out, "completions")
	for _, d := range []string{manDir, compDir} {
		// Pages of commands that no longer exist must not be installed.
		if err := os.RemoveAll(d); err != nil {
			return err
		}
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	source := "checker"
	if version != "" {
		source += " " + version
	}
	header := &doc.GenManHeader{Section: "1", Date: &when, Source: source, Manual: "checker manual"}
	if err := doc.GenManTree(root, header, manDir); err != nil {
		return fmt.Errorf("man pages in %s: %w", manDir, err)
	}
	completions := []struct {
		file string
		gen  func(*os.File) error
	}{
		{"checker.bash", func(f *os.File) error { return root.GenBashCompletionV2(f, true) }},
		{"_checker", func(f *os.File) error { return root.GenZshCompletion(f) }},
		{"checker.fish", func(f *os.File) error { return root.GenFishCompletion(f, true) }},
	}
	for _, c := range completions {
		path := filepath.Join(compDir, c.file)
		if err := writeFile(path, c.gen); err != nil {
			return fmt.Errorf("completion %s: %w", path, err)
		}
	}
	return nil
}

func writeFile(path string, gen func(*os.File) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := gen(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
