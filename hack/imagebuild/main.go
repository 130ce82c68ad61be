// Command imagebuild assembles the operator and server container images
// without a Docker engine: each is one static binary (CGO_ENABLED=0,
// -trimpath, version in -ldflags) on an empty base, running as UID 65532,
// written as an OCI image layout under -out/<image>. The Dockerfiles build the
// same images where a Docker engine exists.
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Spec describes one image.
type Spec struct {
	Name       string   // layout directory and image title
	Package    string   // Go package of the binary
	Path       string   // path of the binary in the image
	Entrypoint []string // defaults to [Path]
	Cmd        []string
	Ports      []string
	LDFlags    string
}

// Images are the two images of this repository.
func Images(version string) []Spec {
	return []Spec{
		{Name: "xtrace-operator", Package: ".", Path: "/manager",
			LDFlags: "-s -w -X main.version=" + version},
		{Name: "xtrace", Package: "./server/cmd/xtrace", Path: "/xtrace", Cmd: []string{"serve"}, Ports: []string{"8742/tcp"},
			LDFlags: "-s -w -X github.com/xtrace-dev/xtrace-operator/server/internal/version.Version=" + version},
	}
}

// NonRootUser is the image user (distroless "nonroot").
const NonRootUser = "65532:65532"

func main() {
	out := flag.String("out", "bin/images", "directory for the OCI layouts")
	version := flag.String("version", "dev", "version stamped into the binaries and labels")
	flag.Parse()
	for _, spec := range Images(*version) {
		dir, err := Build(spec, *version, *out)
		if err != nil {
			fmt.Fprintf(os.Stderr, "imagebuild %s: %v\n", spec.Name, err)
			os.Exit(1)
		}
		fmt.Println("wrote", dir)
	}
}

// Build compiles spec's binary and writes its image as an OCI layout in out/<name>.
func Build(spec Spec, version, out string) (string, error) {
	tmp, err := os.MkdirTemp("", "imagebuild-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, filepath.Base(spec.Path))
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", spec.LDFlags, "-o", bin, spec.Package)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", spec.Package, err, b)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return "", err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return newTarReader(spec.Path, data)
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return "", err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return "", err
	}
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cfg, err := img.ConfigFile()
	if err != nil {
		return "", err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", runtime.GOARCH
	cfg.Created = v1.Time{Time: time.Unix(0, 0).UTC()} // reproducible
	entry := spec.Entrypoint
	if entry == nil {
		entry = []string{spec.Path}
	}
	cfg.Config.Entrypoint, cfg.Config.Cmd = entry, spec.Cmd
	cfg.Config.User = NonRootUser
	cfg.Config.WorkingDir = "/"
	cfg.Config.Labels = map[string]string{
		"org.opencontainers.image.title":    spec.Name,
		"org.opencontainers.image.version":  version,
		"org.opencontainers.image.source":   "https://github.com/xtrace-dev/xtrace-operator",
		"org.opencontainers.image.licenses": "Apache-2.0",
	}
	if len(spec.Ports) > 0 {
		cfg.Config.ExposedPorts = map[string]struct{}{}
		for _, p := range spec.Ports {
			cfg.Config.ExposedPorts[p] = struct{}{}
		}
	}
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		return "", err
	}
	dir := filepath.Join(out, spec.Name)
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return "", err
	}
	return dir, p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": version}))
}

// newTarReader is a one-file tar: the binary, executable, owned by root (it runs as 65532).
func newTarReader(path string, data []byte) (io.ReadCloser, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	hdr := &tar.Header{Name: path[1:], Mode: 0o755, Size: int64(len(data)), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}
	if err := tw.WriteHeader(hdr); err != nil {
		return nil, err
	}
	if _, err := tw.Write(data); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return io.NopCloser(bytes.NewReader(buf.Bytes())), nil
}
