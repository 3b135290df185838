package e2e_test

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// updateScreenshot rewrites docs/ui.png (the README's picture of the page)
// from the browser test: go test ./e2e/ -run StatusPageInBrowser -update-screenshot
var updateScreenshot = flag.Bool("update-screenshot", false, "write the status page's screenshot to docs/ui.png")

// browser starts a headless Chromium of its own (fresh profile, nothing
// fetched from the network) and returns a context to drive it.
func browser(t *testing.T, width, height int) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is not installed: run `make deps-test` (Debian's chromium package)")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		// Without these Chromium tries to reach the internet.
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(width, height),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	// A hang guard for the whole test, not a measurement.
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() {
		cancelTimeout()
		cancelCtx()
		cancelAlloc()
	})
	return ctx
}

// eval runs JavaScript in the page and returns its result.
func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("evaluating %s: %v", js, err)
	}
	return v
}

// until evaluates js until it is true; it fails the test after 20 s.
func until(t *testing.T, ctx context.Context, what, js string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !eval[bool](t, ctx, js) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 20s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// uiInstance is a checker with a failing and a succeeding job and one
// heartbeat service, after one cron run, with serve running.
func uiInstance(t *testing.T, extra string) (*instance, *serveProc) {
	t.Helper()
	up := newTCPPort(t)
	closed := freePort(t)
	in := newInstance(t, fmt.Sprintf(`[general]
servername = status-demo
[email]
nomail = yes
[heartbeat]
discover = yes
%s
[tcp:database]
target = %s
[tcp:cache]
target = 127.0.0.1:%d
`, extra, up.addr, closed))
	p := in.startServe(fmt.Sprintf("http://127.0.0.1:%d/", freePort(t)), nil)
	pushBeat(t, p, "billing", time.Now(), `"queue_depth": 3`)
	pushBeat(t, p, "nightly-backup", time.Now().Add(-26*time.Hour), `"last_size_gb": 41.7`)
	in.run("cron", "minute")
	return in, p
}

// pushBeat posts a heartbeat of service sent at ts, with extra JSON fields.
func pushBeat(t *testing.T, p *serveProc, service string, ts time.Time, extra string) {
	t.Helper()
	body := fmt.Sprintf(`{"service_name": %q, "instance_id": "7f3c9e21-%s", "timestamp": %q, "uptime_seconds": 93784,
		"heartbeat_count": 1563, "memory_usage_mb": 48.2, "cpu_usage_percent": 2.5, %s}`,
		service, service, ts.Format(time.RFC3339Nano), extra)
	resp, err := http.Post(p.url+"heartbeat/"+service, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("push of %s: %s %s", service, resp.Status, b)
	}
}

// TestStatusPageInBrowser: in a real browser the page shows the jobs,
// problems first, and a heartbeat published while it is open appears
// without a reload. On a phone-sized screen nothing scrolls sideways.
func TestStatusPageInBrowser(t *testing.T) {
	_, p := uiInstance(t, "")
	ctx := browser(t, 1280, 900)
	if err := chromedp.Do(ctx, chromedp.Navigate(p.url+"ui/"), chromedp.WaitVisible(chromedp.CSS("#jobs-table"))); err != nil {
		t.Fatal(err)
	}
	jobs := eval[[]string](t, ctx, `Array.from(document.querySelectorAll("#jobs-table tbody tr")).map(tr => tr.dataset.job + "=" + tr.querySelector(".state .badge").textContent)`)
	if len(jobs) < 3 || jobs[0] != "tcp:cache=failing (CRITICAL)" || !contains(jobs, "tcp:database=succeeding") || !contains(jobs, "heartbeat:billing=succeeding") {
		t.Fatalf("jobs in the page: %q", jobs)
	}
	until(t, ctx, "the live stream connects", `document.getElementById("live").dataset.state === "on"`)
	if got := eval[[]string](t, ctx, `Array.from(document.querySelectorAll("#beats tbody tr")).map(tr => tr.dataset.service)`); strings.Join(got, ",") != "billing,nightly-backup" {
		t.Fatalf("heartbeats in the page: %q", got)
	}

	// A heartbeat arrives while the page is open: no reload.
	eval[bool](t, ctx, `window.notReloaded = true`)
	pushBeat(t, p, "payments", time.Now(), `"region": "eu-west"`)
	until(t, ctx, "the new heartbeat shows", `!!document.querySelector('#beats tr[data-service="payments"]')`)
	row := eval[[]string](t, ctx, `(() => { const tr = document.querySelector('#beats tr[data-service="payments"]');
		return [tr.querySelector(".name").textContent, tr.querySelector(".state").textContent, tr.querySelector(".when").textContent] })()`)
	if row[0] != "payments" || row[1] != "alive" || !strings.HasSuffix(row[2], "s ago") {
		t.Errorf("the live row: %q", row)
	}
	if !eval[bool](t, ctx, `window.notReloaded === true`) {
		t.Error("the page was reloaded")
	}
	if got := eval[string](t, ctx, `document.getElementById("sum-beats").textContent`); got != "3 heartbeats" {
		t.Errorf("summary after the live beat: %q", got)
	}

	if *updateScreenshot {
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("..", "docs", "ui.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// A phone: 360 px wide, nothing wider than the screen.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(360, 740), chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#jobs-table"))); err != nil {
		t.Fatal(err)
	}
	if w := eval[int](t, ctx, `document.documentElement.scrollWidth`); w > 360 {
		t.Errorf("at 360 px the page is %d px wide: it scrolls sideways", w)
	}
	if *updateScreenshot {
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("..", "docs", "ui-phone.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
