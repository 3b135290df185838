package metrics

import (
	"fmt"
	"os"
	"path/filepath"
)

// WriteTextfile replaces the file at path with text, atomically: the text
// goes to a temporary file in the same directory, which is then renamed
// over path, so that node_exporter's textfile collector never reads half a
// file. The temporary name does not end in .prom, so the collector skips
// it. The file is readable by all (0644), as the collector usually runs as
// another user. Nothing is synced to disk: after a crash the next run
// writes the file again.
func WriteTextfile(path string, text []byte) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".*.tmp")
	if err != nil {
		return fmt.Errorf("metrics textfile %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(text); err != nil {
		return fmt.Errorf("metrics textfile %s: writing %s: %w", path, f.Name(), err)
	}
	if err = f.Chmod(0o644); err != nil {
		return fmt.Errorf("metrics textfile %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("metrics textfile %s: writing %s: %w", path, f.Name(), err)
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("metrics textfile %s: %w", path, err)
	}
	return nil
}
