package ui_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// -ui.screenshots=DIR also writes the README's screenshots there (make ui-screenshots).
var readmeShots = flag.String("ui.screenshots", "", "directory to write the README screenshots into")

// chromiumPath finds the browser: $XTRACE_CHROMIUM, else the usual names on PATH.
func chromiumPath() string {
	if p := os.Getenv("XTRACE_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// browser is one headless Chromium for the whole suite; each test gets a tab.
type browser struct {
	ctx context.Context
}

func startBrowser(t *testing.T) *browser {
	t.Helper()
	if testing.Short() {
		t.Skip("drives headless Chromium (make test runs it)")
	}
	path := chromiumPath()
	if path == "" {
		t.Skip("no Chromium found (install the Debian package chromium, or set XTRACE_CHROMIUM): the browser tests need it")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // the tests run as root in CI
		// No traffic but to the server under test.
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("lang", "en-US"),
		// Chromium keeps its singleton socket in a directory of TMPDIR that
		// outlives a killed browser: give it one the test removes.
		chromedp.Env("TMPDIR="+t.TempDir()),
	)
	// Start the browser now, so that each tab is a child of one browser. On a
	// loaded machine Chromium occasionally dies while starting (before any
	// page exists); that is not what these tests are about, so it gets three tries.
	var lastErr error
	for attempt := 1; attempt <= 3; attempt++ {
		allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(opts, chromedp.UserDataDir(t.TempDir()))...)
		ctx, cancel := chromedp.NewContext(allocCtx)
		if lastErr = chromedp.Do(ctx, chromedp.Navigate("about:blank")); lastErr == nil {
			t.Cleanup(func() { cancel(); cancelAlloc() })
			return &browser{ctx: ctx}
		}
		cancel()
		cancelAlloc()
		t.Logf("start %s (attempt %d): %v", path, attempt, lastErr)
	}
	t.Fatalf("start %s: %v", path, lastErr)
	return nil
}

// tab is one browser tab for one test. It records the console and fails the
// test on any error or uncaught exception that allowed does not match.
type tab struct {
	t       *testing.T
	ctx     context.Context
	base    string
	mu      sync.Mutex
	errors  []string
	barrier chan string
	allowed []*regexp.Regexp
	shots   string
}

func (b *browser) tab(t *testing.T, base string) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx)
	tb := &tab{t: t, ctx: ctx, base: base, barrier: make(chan string, 16)}
	consoleCtx, stopConsole := context.WithCancel(ctx)
	messages := chromedp.Console(consoleCtx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			if strings.HasPrefix(m.Text, "test-barrier-") {
				tb.barrier <- m.Text
				continue
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				tb.mu.Lock()
				tb.errors = append(tb.errors, fmt.Sprintf("%s (%s:%d)", m, m.URL, m.Line))
				tb.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		if !t.Failed() {
			tb.checkConsole()
		}
		stopConsole()
		<-done
		cancel()
	})
	tb.do(chromedp.EmulateViewport(1280, 860))
	return tb
}

// allow accepts console errors matching re (e.g. the 401 of a refused sign-in).
func (tb *tab) allow(re string) { tb.allowed = append(tb.allowed, regexp.MustCompile(re)) }

// checkConsole fails the test on console errors logged so far: a marker
// message is logged and awaited, so everything before it has been read.
func (tb *tab) checkConsole() {
	tb.t.Helper()
	marker := fmt.Sprintf("test-barrier-%d", time.Now().UnixNano())
	tb.eval(`console.debug(`+jsString(marker)+`), true`, nil)
	timeout := time.After(10 * time.Second)
	for seen := ""; seen != marker; {
		select {
		case seen = <-tb.barrier:
		case <-timeout:
			tb.t.Fatal("console marker never arrived")
		}
	}
	tb.mu.Lock()
	defer tb.mu.Unlock()
next:
	for _, e := range tb.errors {
		for _, re := range tb.allowed {
			if re.MatchString(e) {
				continue next
			}
		}
		tb.t.Errorf("browser console: %s", e)
	}
}

func (tb *tab) do(actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tb.fail("browser action: %v", err)
	}
}

// eval runs a JavaScript expression and decodes its value into out (may be nil).
func (tb *tab) eval(expr string, out any) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 30*time.Second)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](expr))
	if err != nil {
		tb.fail("evaluate %s: %v", expr, err)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			tb.fail("evaluate %s: decode %s: %v", expr, raw, err)
		}
	}
}

// waitFor polls a JavaScript condition until it is true. (chromedp.Poll builds
// its predicate with new Function, which the UI's Content-Security-Policy forbids.)
func (tb *tab) waitFor(what, cond string) {
	tb.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var ok bool
		tb.eval(`!!(`+cond+`)`, &ok)
		if ok {
			return
		}
		if time.Now().After(deadline) {
			tb.fail("waited 15 s for %s (%s)", what, cond)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitText waits until the element's text contains want.
func (tb *tab) waitText(sel, want string) {
	tb.t.Helper()
	tb.waitFor(fmt.Sprintf("%q in %s", want, sel),
		`(document.querySelector(`+jsString(sel)+`)?.textContent || '').includes(`+jsString(want)+`)`)
}

func (tb *tab) text(sel string) string {
	tb.t.Helper()
	var s string
	tb.eval(`document.querySelector(`+jsString(sel)+`)?.textContent ?? ''`, &s)
	return s
}

func (tb *tab) count(sel string) int {
	tb.t.Helper()
	var n int
	tb.eval(`document.querySelectorAll(`+jsString(sel)+`).length`, &n)
	return n
}

func (tb *tab) click(sel string) {
	tb.t.Helper()
	tb.do(chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
}

func (tb *tab) typeInto(sel, text string) {
	tb.t.Helper()
	tb.do(chromedp.SendKeys(chromedp.CSS(sel), text, chromedp.NodeVisible))
}

// choose picks an option of a select as a person does: the value, then a change event.
func (tb *tab) choose(sel, value string) {
	tb.t.Helper()
	var ok bool
	tb.eval(`(() => { const el = document.querySelector(`+jsString(sel)+`); if (!el || ![...el.options].some(o => o.value === `+jsString(value)+`)) return false;
		el.value = `+jsString(value)+`; el.dispatchEvent(new Event('change', {bubbles: true})); return true; })()`, &ok)
	if !ok {
		tb.fail("select %s has no option %q", sel, value)
	}
}

// open loads the UI at a hash route (a full page load).
func (tb *tab) open(hash string) {
	tb.t.Helper()
	tb.do(chromedp.Navigate(tb.base + "/ui/" + hash))
}

// route changes the hash as a link would, without reloading.
func (tb *tab) route(hash string) {
	tb.t.Helper()
	tb.eval(`location.hash = `+jsString(hash)+`, true`, nil)
}

func (tb *tab) hash() string {
	tb.t.Helper()
	var h string
	tb.eval(`decodeURIComponent(location.hash)`, &h)
	return h
}

// signIn signs in with a bearer token through the form.
func (tb *tab) signIn(token string) {
	tb.t.Helper()
	tb.open("")
	tb.waitFor("the sign-in form", `document.querySelector('#signin-token')`)
	tb.typeInto("#signin-token", token)
	tb.click("#signin-submit")
	tb.waitFor("the navigation after sign-in", `document.querySelector('#nav-traces')`)
}

// screenshot checks the page for rendering slips and unlabelled controls, then
// saves it as PNG under the test's artifact directory (and in the README's
// folder with -ui.screenshots when readme is set).
func (tb *tab) screenshot(name string, readme bool) {
	tb.t.Helper()
	// A rendering slip (a missing field shown as "undefined", a null appended as text) fails here.
	var slips []string
	tb.eval(`document.body.innerText.split('\n').filter(l => /\b(undefined|NaN)\b|^\s*null\s*$|\[object Object\]/.test(l))`, &slips)
	if len(slips) > 0 {
		tb.t.Errorf("%s: the page shows %q", name, slips)
	}
	// Every control has a label a screen reader can announce.
	var unlabelled []string
	tb.eval(`[...document.querySelectorAll('input, select, textarea')].filter(el => !el.labels?.length && !el.getAttribute('aria-label')).map(el => el.outerHTML)`, &unlabelled)
	if len(unlabelled) > 0 {
		tb.t.Errorf("%s: controls without a label: %q", name, unlabelled)
	}
	ctx, cancel := context.WithTimeout(tb.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		tb.t.Errorf("screenshot %s: %v", name, err)
		return
	}
	if tb.shots == "" {
		tb.shots = tb.t.ArtifactDir()
		tb.t.Logf("screenshots in %s", tb.shots)
	}
	if err := os.WriteFile(filepath.Join(tb.shots, name+".png"), png, 0o644); err != nil {
		tb.t.Error(err)
	}
	if readme && *readmeShots != "" {
		if err := os.WriteFile(filepath.Join(*readmeShots, "ui-"+name+".png"), png, 0o644); err != nil {
			tb.t.Error(err)
		}
	}
}

// fail stops the test with a screenshot and the page's text, to see what went wrong.
func (tb *tab) fail(format string, args ...any) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 5*time.Second)
	defer cancel()
	if png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
		p := filepath.Join(tb.t.ArtifactDir(), "failure.png")
		if os.WriteFile(p, png, 0o644) == nil {
			tb.t.Logf("screenshot of the failure: %s", p)
		}
	}
	if text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + '\n' + document.body.innerText`)); err == nil {
		tb.t.Logf("page:\n%s", text)
	}
	tb.t.Fatalf(format, args...)
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
