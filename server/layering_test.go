package server_test

import (
	"encoding/json"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/xtrace-dev/xtrace-operator"

type listedPackage struct {
	ImportPath   string
	Deps         []string
	Imports      []string
	TestImports  []string
	XTestImports []string
}

func goList(t *testing.T, args ...string) []listedPackage {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list", "-json"}, args...)...)
	cmd.Dir = ".."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %v: %v", args, err)
	}
	var pkgs []listedPackage
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p listedPackage
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// TestDomainPackagesHaveNoHTTP: the domain and the write path know nothing
// of HTTP; httpapi alone maps their errors to status codes.
func TestDomainPackagesHaveNoHTTP(t *testing.T) {
	for _, p := range goList(t, "-deps=false", module+"/server/internal/metrics", module+"/server/internal/traces",
		module+"/server/internal/ingest", module+"/server/internal/errs", module+"/server/internal/remotewrite") {
		deps := goList(t, "-deps", p.ImportPath)
		for _, d := range deps {
			if d.ImportPath == "net/http" {
				t.Errorf("%s depends on net/http", p.ImportPath)
			}
		}
	}
	// The adapters over Prometheus' libraries (whose dependencies include
	// net/http) must not use HTTP themselves.
	for _, p := range goList(t, "-deps=false", module+"/server/internal/otlpmetrics", module+"/server/internal/promstorage") {
		if slices.Contains(p.Imports, "net/http") {
			t.Errorf("%s imports net/http", p.ImportPath)
		}
	}
}

// TestOnlyTheStoreTalksToPostgreSQL: outside the store, only the test
// harness imports pgx (the server's SQL lives in one place).
func TestOnlyTheStoreTalksToPostgreSQL(t *testing.T) {
	allowed := []string{module + "/server/internal/store", module + "/internal/pgtest"}
	for _, p := range goList(t, module+"/...") {
		if slices.Contains(allowed, p.ImportPath) {
			continue
		}
		for _, imp := range slices.Concat(p.Imports, p.TestImports, p.XTestImports) {
			if strings.HasPrefix(imp, "github.com/jackc/pgx") {
				t.Errorf("%s imports %s; go through the store (or pgtest in tests)", p.ImportPath, imp)
			}
		}
	}
}
