package main

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"io"
	"os"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// TestImagesAssemble builds both images without Docker and checks what a
// runtime would see: entrypoint, non-root user, labels, one static binary.
func TestImagesAssemble(t *testing.T) {
	if testing.Short() {
		t.Skip("builds every image (minutes)")
	}
	if err := os.Chdir("../.."); err != nil { // build from the module root, as `make images` does
		t.Fatal(err)
	}
	out := t.TempDir()
	for _, spec := range Images("v9.9.9-test") {
		dir, err := Build(spec, "v9.9.9-test", out)
		if err != nil {
			t.Fatal(err)
		}
		p, err := layout.FromPath(dir)
		if err != nil {
			t.Fatal(err)
		}
		idx, err := p.ImageIndex()
		if err != nil {
			t.Fatal(err)
		}
		m, err := idx.IndexManifest()
		if err != nil || len(m.Manifests) != 1 {
			t.Fatalf("%s: index %v %v", spec.Name, m, err)
		}
		img, err := idx.Image(m.Manifests[0].Digest)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		c := cfg.Config
		if len(c.Entrypoint) != 1 || c.Entrypoint[0] != spec.Path || c.User != "65532:65532" || cfg.OS != "linux" ||
			c.Labels["org.opencontainers.image.version"] != "v9.9.9-test" || c.Labels["org.opencontainers.image.title"] != spec.Name {
			t.Fatalf("%s: config %+v", spec.Name, cfg)
		}
		if spec.Name == "xtrace" {
			if len(c.Cmd) != 1 || c.Cmd[0] != "serve" {
				t.Fatalf("xtrace cmd %v", c.Cmd)
			}
			if _, ok := c.ExposedPorts["8742/tcp"]; !ok {
				t.Fatalf("xtrace ports %v", c.ExposedPorts)
			}
		}
		layers, err := img.Layers()
		if err != nil || len(layers) != 1 {
			t.Fatalf("%s: %d layers (%v); want exactly the binary", spec.Name, len(layers), err)
		}
		rc, err := layers[0].Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		hdr, err := tr.Next()
		if err != nil || "/"+hdr.Name != spec.Path || hdr.Mode&0o111 == 0 {
			t.Fatalf("%s: layer entry %+v %v", spec.Name, hdr, err)
		}
		data, _ := io.ReadAll(tr)
		if _, err := tr.Next(); err != io.EOF {
			t.Fatalf("%s: more than one file in the image", spec.Name)
		}
		f, err := elf.NewFile(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("%s: not an ELF binary: %v", spec.Name, err)
		}
		for _, prog := range f.Progs {
			if prog.Type == elf.PT_INTERP {
				t.Fatalf("%s: dynamically linked; the image has no libc", spec.Name)
			}
		}
	}
}
