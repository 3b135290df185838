package heartbeat

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func openTestLocal(t *testing.T, opts ...StoreOption) *LocalStore {
	t.Helper()
	s, err := OpenLocal(t.TempDir(), append([]StoreOption{WithPollInterval(10 * time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatalf("OpenLocal: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestLocalStoreContract(t *testing.T) {
	storeContract(t, func(t *testing.T) Store { return openTestLocal(t) })
}

func TestLocalStoreFiles(t *testing.T) {
	parent := t.TempDir()
	s, err := OpenLocal(parent)
	if err != nil {
		t.Fatalf("OpenLocal: %v", err)
	}
	if s.Dir() != filepath.Join(parent, "heartbeat") {
		t.Errorf("Dir = %s, want %s/heartbeat", s.Dir(), parent)
	}
	info, err := os.Stat(s.Dir())
	if err != nil || info.Mode().Perm() != 0o700 {
		t.Fatalf("store directory mode = %v (%v), want 0700", info.Mode().Perm(), err)
	}
	if err := s.Put(context.Background(), Message{ServiceName: "web", Timestamp: time.Now()}); err != nil {
		t.Fatalf("Put: %v", err)
	}
	entries, err := os.ReadDir(s.Dir())
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "web.json" {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("directory holds %v, want only web.json (no temporary files left)", names)
	}
	info, err = os.Stat(filepath.Join(s.Dir(), "web.json"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("file mode = %v (%v), want 0600", info.Mode().Perm(), err)
	}
	if _, err := OpenLocal(""); err == nil {
		t.Error("OpenLocal(\"\") succeeded")
	}
}

func TestLocalStoreReadersNeverSeeHalfWrites(t *testing.T) {
	s := openTestLocal(t)
	ctx := context.Background()
	pad := strings.Repeat("x", 20000) // big enough that a torn write would show
	put := func(i int) error {
		return s.Put(ctx, Message{ServiceName: "busy", Timestamp: time.Now(), HeartbeatCount: int64(i), Data: map[string]any{"pad": pad}})
	}
	if err := put(0); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; i <= 200; i++ {
			if err := put(i); err != nil {
				t.Errorf("Put %d: %v", i, err)
				break
			}
		}
		close(stop)
	}()
	reads := 0
	for done := false; !done; {
		select {
		case <-stop:
			done = true
		default:
		}
		m, ok, err := s.Get(ctx, "busy")
		if err != nil || !ok || m.Data["pad"] != pad {
			t.Fatalf("read %d during writes: ok %v, err %v", reads, ok, err)
		}
		reads++
	}
	wg.Wait()
	if m, _, _ := s.Get(ctx, "busy"); m.HeartbeatCount != 200 {
		t.Errorf("final count = %d, want 200", m.HeartbeatCount)
	}
}

func TestLocalStoreCorruptFiles(t *testing.T) {
	s := openTestLocal(t)
	ctx := context.Background()
	if err := s.Put(ctx, Message{ServiceName: "good", Timestamp: time.Now()}); err != nil {
		t.Fatal(err)
	}
	write := func(name, content string) string {
		path := filepath.Join(s.Dir(), name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	broken := write("broken.json", `{"service_name":"broken","timestamp":`)
	imposter := write("imposter.json", `{"service_name":"good","timestamp":"2025-01-16T08:30:00Z"}`)
	huge := write("huge.json", `{"service_name":"huge","timestamp":"2025-01-16T08:30:00Z","x":"`+strings.Repeat("x", MaxMessageSize)+`"}`)
	write("notes.txt", "ignored")
	write("~good.json.123.tmp", "ignored: a temporary file")

	tests := []struct {
		service, want string
	}{
		{"broken", broken + ": heartbeat message is not valid JSON"},
		{"imposter", imposter + ` holds a heartbeat of service "good"`},
		{"huge", huge + fmt.Sprintf(": heartbeat message is %d bytes", MaxMessageSize+65)},
	}
	for _, tt := range tests {
		_, _, err := s.Get(ctx, tt.service)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Get(%s) error = %v, want one containing %q", tt.service, err, tt.want)
		}
	}

	list, err := s.List(ctx)
	if err == nil {
		t.Fatal("List succeeded despite corrupt files")
	}
	for _, tt := range tests {
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("List error does not contain %q:\n%v", tt.want, err)
		}
	}
	if len(list) != 1 || list[0].ServiceName != "good" {
		t.Errorf("List = %+v, want the good heartbeat as well", list)
	}
}

func TestLocalWatch(t *testing.T) {
	sink := &errorSink{}
	s := openTestLocal(t, WithStoreLog(sink.log))
	ctx := context.Background()
	if err := s.Put(ctx, Message{ServiceName: "old", Timestamp: time.Now(), HeartbeatCount: 1}); err != nil {
		t.Fatal(err)
	}
	var seenOld bool
	var mu sync.Mutex
	count := int64(0)
	got := watchFor(t, s, func(m Message) bool {
		if m.ServiceName == "old" && m.HeartbeatCount == 1 {
			mu.Lock()
			seenOld = true
			mu.Unlock()
		}
		return m.ServiceName == "new" && sink.contains("bad.json")
	}, func() {
		count++
		_ = os.WriteFile(filepath.Join(s.Dir(), "bad.json"), []byte("{"+strings.Repeat(" ", int(count))), 0o600)
		_ = s.Put(ctx, Message{ServiceName: "new", Timestamp: time.Now(), HeartbeatCount: count})
	})
	if got.HeartbeatCount < 1 {
		t.Errorf("watched %+v", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if seenOld {
		t.Error("Watch reported a heartbeat written before it started")
	}
}

func TestLocalWatchMissingDir(t *testing.T) {
	s := openTestLocal(t)
	if err := os.RemoveAll(s.Dir()); err != nil {
		t.Fatal(err)
	}
	err := s.Watch(context.Background(), func(Message) {})
	if err == nil || !strings.Contains(err.Error(), s.Dir()) {
		t.Errorf("Watch on a missing directory = %v, want an error naming it", err)
	}
}

// TestLocalStoreRootWritesAsDirectoryOwner: root publishing into another
// user's store (a root backup script's last line) leaves every directory
// and file it makes owned by that user, who can still read and replace
// them; in root's own directory nothing is given away.
func TestLocalStoreRootWritesAsDirectoryOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to write into another user's directory")
	}
	const nobody = 65534
	cases := []struct {
		name string
		// setup prepares base and returns the directory given to OpenLocal.
		setup func(t *testing.T, base string) string
		want  int // the uid the store's directories and files must have
	}{
		{"heartbeat directory of another user", func(t *testing.T, base string) string {
			dir := filepath.Join(base, "state")
			mkdirOwned(t, dir, nobody)
			mkdirOwned(t, filepath.Join(dir, "heartbeat"), nobody)
			// The file root replaces belongs to the user already.
			old := filepath.Join(dir, "heartbeat", "svc1.json")
			if err := os.WriteFile(old, []byte("{}"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(old, nobody, nobody); err != nil {
				t.Fatal(err)
			}
			return dir
		}, nobody},
		{"state directory of another user, no heartbeat directory yet", func(t *testing.T, base string) string {
			dir := filepath.Join(base, "state")
			mkdirOwned(t, dir, nobody)
			return dir
		}, nobody},
		{"no state directory yet, in another user's home", func(t *testing.T, base string) string {
			home := filepath.Join(base, "home")
			mkdirOwned(t, home, nobody)
			return filepath.Join(home, ".checker")
		}, nobody},
		{"root's own directory", func(t *testing.T, base string) string {
			dir := filepath.Join(base, "state")
			mkdirOwned(t, dir, 0)
			return dir
		}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			// Let the other user reach the directories under base.
			for _, d := range []string{base, filepath.Dir(base)} {
				if err := os.Chmod(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			dir := tc.setup(t, base)
			s, err := OpenLocal(dir)
			if err != nil {
				t.Fatalf("OpenLocal: %v", err)
			}
			if err := s.Put(context.Background(), Message{ServiceName: "svc1", Timestamp: time.Now()}); err != nil {
				t.Fatalf("Put: %v", err)
			}
			for _, p := range []string{dir, s.Dir(), filepath.Join(s.Dir(), "svc1.json")} {
				info, err := os.Stat(p)
				if err != nil {
					t.Fatal(err)
				}
				st := info.Sys().(*syscall.Stat_t)
				if int(st.Uid) != tc.want || int(st.Gid) != tc.want {
					t.Errorf("%s is owned by %d:%d, want %d:%d", p, st.Uid, st.Gid, tc.want, tc.want)
				}
				wantMode := os.FileMode(0o700)
				if !info.IsDir() {
					wantMode = 0o600
				}
				if p != dir && info.Mode().Perm() != wantMode {
					t.Errorf("%s has mode %v, want %v", p, info.Mode().Perm(), wantMode)
				}
			}
			if entries, _ := os.ReadDir(s.Dir()); len(entries) != 1 {
				t.Errorf("store directory holds %d entries, want only svc1.json", len(entries))
			}
			if tc.want == 0 {
				return
			}
			// The user's own checker reads the heartbeat and can replace it.
			asUser := func(script string) {
				t.Helper()
				cmd := exec.CommandContext(t.Context(), "sh", "-c", script, "sh", s.Dir())
				cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Errorf("as uid %d, %q: %v\n%s", nobody, script, err, out)
				}
			}
			asUser(`grep -q '"service_name":"svc1"' "$1/svc1.json"`)
			asUser(`echo '{}' > "$1/~probe" && mv "$1/~probe" "$1/svc1.json"`)
		})
	}
}

// mkdirOwned makes the directory dir (mode 0700) owned by uid, with the
// group of the same number.
func mkdirOwned(t *testing.T, dir string, uid int) {
	t.Helper()
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, uid, uid); err != nil {
		t.Fatal(err)
	}
}
