package ui_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"regexp"
	"strings"
	"testing"

	"github.com/xtrace-dev/xtrace-operator/server/internal/servertest"
	"github.com/xtrace-dev/xtrace-operator/server/internal/ui"
)

func get(t *testing.T, url string, header ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	// Redirects and compression are what this test looks at: the client must not handle them.
	client := &http.Client{
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport:     &http.Transport{DisableCompression: true},
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func body(t *testing.T, r *http.Response) []byte {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestServedByTheServer checks the UI's routes on a real server: public
// files with strict headers, revalidation, gzip, and "/" sending browsers to /ui/.
func TestServedByTheServer(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})

	index := get(t, srv.URL+"/ui/")
	if index.StatusCode != http.StatusOK {
		t.Fatalf("GET /ui/ without credentials: %d, want 200 (the files are public)", index.StatusCode)
	}
	for name, want := range map[string]string{
		"Content-Type":            "text/html; charset=utf-8",
		"Content-Security-Policy": ui.ContentSecurityPolicy,
		"X-Content-Type-Options":  "nosniff",
		"X-Frame-Options":         "DENY",
		"Cache-Control":           "no-cache",
	} {
		if got := index.Header.Get(name); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	for _, directive := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(ui.ContentSecurityPolicy, directive) {
			t.Errorf("CSP lacks %s", directive)
		}
	}
	if strings.Contains(ui.ContentSecurityPolicy, "unsafe") {
		t.Errorf("CSP allows something unsafe: %s", ui.ContentSecurityPolicy)
	}
	plain := body(t, index)
	if !bytes.Contains(plain, []byte(`<script src="js/main.js" type="module">`)) {
		t.Errorf("index.html does not load the app:\n%s", plain)
	}

	etag := index.Header.Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	if r := get(t, srv.URL+"/ui/", "If-None-Match", etag); r.StatusCode != http.StatusNotModified {
		t.Errorf("revalidation with the ETag: %d, want 304", r.StatusCode)
	}

	zipped := get(t, srv.URL+"/ui/index.html", "Accept-Encoding", "gzip, br")
	if zipped.Header.Get("Content-Encoding") != "gzip" || zipped.Header.Get("ETag") == etag {
		t.Errorf("gzip answer: Content-Encoding %q, ETag %q (identity ETag %q)", zipped.Header.Get("Content-Encoding"), zipped.Header.Get("ETag"), etag)
	}
	zr, err := gzip.NewReader(bytes.NewReader(body(t, zipped)))
	if err != nil {
		t.Fatal(err)
	}
	unzipped, err := io.ReadAll(zr)
	if err != nil || !bytes.Equal(unzipped, plain) {
		t.Errorf("gzip body differs from the file (err %v)", err)
	}
	if r := get(t, srv.URL+"/ui/index.html", "Accept-Encoding", "gzip;q=0"); r.Header.Get("Content-Encoding") != "" {
		t.Error("gzip sent although refused with q=0")
	}

	for file, ctype := range map[string]string{"js/main.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8",
		"vendor/uPlot.iife.min.js": "text/javascript; charset=utf-8", "favicon.svg": "image/svg+xml"} {
		if r := get(t, srv.URL+"/ui/"+file); r.StatusCode != 200 || r.Header.Get("Content-Type") != ctype || r.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: %d %q", file, r.StatusCode, r.Header.Get("Content-Type"))
		}
	}
	if r := get(t, srv.URL+"/ui/no-such.js"); r.StatusCode != http.StatusNotFound {
		t.Errorf("unknown file: %d, want 404", r.StatusCode)
	}
	if r := get(t, srv.URL+"/ui"); r.StatusCode/100 != 3 || r.Header.Get("Location") != "/ui/" {
		t.Errorf("/ui: %d to %q, want a redirect to /ui/", r.StatusCode, r.Header.Get("Location"))
	}

	// "/" sends browsers to the UI; API clients keep getting the JSON error model.
	browser := get(t, srv.URL+"/", "Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
	if browser.StatusCode != http.StatusFound || browser.Header.Get("Location") != "/ui/" {
		t.Errorf("browser at /: %d to %q, want 302 to /ui/", browser.StatusCode, browser.Header.Get("Location"))
	}
	api := get(t, srv.URL+"/", "Accept", "application/json")
	if b := body(t, api); api.StatusCode != http.StatusNotFound || !bytes.Contains(b, []byte(`"code":"NOT_FOUND"`)) {
		t.Errorf("API client at /: %d %s", api.StatusCode, b)
	}
	// The UI adds no way around authentication.
	if r := get(t, srv.URL+"/api/public/traces"); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("API without credentials: %d, want 401", r.StatusCode)
	}
}

// TestAssetsAreSelfContained reads the shipped files: nothing is loaded from
// another host, nothing inline needs an unsafe CSP, and every file that
// index.html or a module refers to is shipped.
func TestAssetsAreSelfContained(t *testing.T) {
	files := os.DirFS("assets")
	shipped := map[string]bool{}
	// The only absolute URLs: the SVG namespace and uPlot's licence banner (a comment).
	allowedURL := regexp.MustCompile(`^(http://www\.w3\.org/2000/svg|https://github\.com/leeoniya/uPlot)$`)
	anyURL := regexp.MustCompile(`(?i)\b(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}[^\s"'()<>]*`)
	err := fs.WalkDir(files, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		shipped[name] = true
		b, err := fs.ReadFile(files, name)
		if err != nil {
			return err
		}
		for _, u := range anyURL.FindAllString(string(b), -1) {
			if !allowedURL.MatchString(u) {
				t.Errorf("%s refers to another host: %s", name, u)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	index, _ := fs.ReadFile(files, "index.html")
	for _, bad := range []*regexp.Regexp{
		regexp.MustCompile(`<script(?:\s[^>]*)?>\s*[^<\s]`), // inline script
		regexp.MustCompile(`<style`),
		regexp.MustCompile(`\sstyle=`),
		regexp.MustCompile(`\son[a-z]+=`),
	} {
		if bad.Match(index) {
			t.Errorf("index.html has inline code the CSP forbids: %s", bad.FindString(string(index)))
		}
	}
	refs := regexp.MustCompile(`(?:src|href)="([^"#:]+)"`).FindAllStringSubmatch(string(index), -1)
	imports := regexp.MustCompile(`(?m)^import [^;]*? from '\./([^']+)';`)
	stringCode := regexp.MustCompile(`\.(?:inner|outer)HTML\s*=|insertAdjacentHTML|document\.write|\beval\(|new Function`)
	for name := range shipped {
		if strings.HasSuffix(name, ".js") && strings.HasPrefix(name, "js/") {
			b, _ := fs.ReadFile(files, name)
			for _, m := range imports.FindAllStringSubmatch(string(b), -1) {
				refs = append(refs, []string{"", path.Join(path.Dir(name), m[1])})
			}
			if m := stringCode.FindString(string(b)); m != "" {
				t.Errorf("%s builds code or markup from strings: %s", name, m)
			}
		}
	}
	if len(refs) < 10 {
		t.Fatalf("found only %d references; the patterns are broken", len(refs))
	}
	for _, r := range refs {
		if !shipped[r[1]] {
			t.Errorf("%s is referred to but not shipped", r[1])
		}
	}
}

// TestAssetSize keeps the UI small: it is in every server binary.
func TestAssetSize(t *testing.T) {
	raw, gz := ui.New().Size()
	t.Logf("embedded UI: %d bytes, %d bytes as sent gzipped", raw, gz)
	if raw > 400_000 || gz > 120_000 {
		t.Errorf("the UI grew to %d bytes (%d gzipped); keep it lean or raise the budget on purpose", raw, gz)
	}
}
