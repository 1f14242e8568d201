// Command syft-scanner is an SBOM generator for BuildKit's `attest:sbom`.
//
// BuildKit runs the generator image's entrypoint with the scanned root filesystem mounted
// read-only at $BUILDKIT_SCAN_SOURCE, optional extra filesystems (build contexts, other stages)
// as the subfolders of $BUILDKIT_SCAN_SOURCE_EXTRAS, and an empty $BUILDKIT_SCAN_DESTINATION.
// Every file left in the destination must be one in-toto statement; BuildKit takes the one whose
// name starts with the core source's folder name ("sbom") as the image's SBOM. The statement's
// subject is BuildKit's to fill in. This writes NAME.spdx.json for each source, with an SPDX
// JSON document as the predicate, as docker/buildkit-syft-scanner does.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"

	"github.com/anchore/syft/syft"
	"github.com/anchore/syft/syft/cataloging/pkgcataloging"
	"github.com/anchore/syft/syft/format/spdxjson"
	"github.com/anchore/syft/syft/source"
	"github.com/anchore/syft/syft/source/directorysource"
)

// statement is an in-toto v0.1 statement (in-toto-golang's Statement, without the dependency).
type statement struct {
	Type          string          `json:"_type"`
	PredicateType string          `json:"predicateType"`
	Subject       []any           `json:"subject"`
	Predicate     json.RawMessage `json:"predicate"`
}

func main() {
	if err := run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "syft-scanner:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	dest, err := requiredDir("BUILDKIT_SCAN_DESTINATION")
	if err != nil {
		return err
	}
	core, err := requiredDir("BUILDKIT_SCAN_SOURCE")
	if err != nil {
		return err
	}
	targets := []string{core}
	if extras := os.Getenv("BUILDKIT_SCAN_SOURCE_EXTRAS"); extras != "" {
		entries, err := os.ReadDir(extras)
		if err != nil {
			return err
		}
		for _, e := range entries {
			targets = append(targets, filepath.Join(extras, e.Name()))
		}
	}
	for _, target := range targets {
		if err := scan(ctx, target, dest); err != nil {
			return fmt.Errorf("scanning %s: %w", target, err)
		}
	}
	return nil
}

func requiredDir(name string) (string, error) {
	p := os.Getenv(name)
	if p == "" {
		return "", fmt.Errorf("required variable %q not set", name)
	}
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("variable %q (%q): %w", name, p, err)
	}
	return p, nil
}

func scan(ctx context.Context, root, dest string) error {
	name := filepath.Base(root)
	src, err := directorysource.New(directorysource.Config{
		Path:  root,
		Alias: source.Alias{Name: name},
	})
	if err != nil {
		return err
	}
	defer src.Close()
	// The source is an image's root filesystem: installed packages, as for an image scan.
	// The RPM database cataloger is left out: it needs a SQLite driver (modernc.org/sqlite,
	// minutes more to compile), and the images the tests scan hold no RPM database.
	selection := pkgcataloging.NewSelectionRequest().
		WithDefaults(pkgcataloging.ImageTag).
		WithRemovals("rpm-db-cataloger")
	cfg := syft.DefaultCreateSBOMConfig().
		WithTool("syft", syftVersion()).
		WithCatalogerSelection(selection)
	s, err := syft.CreateSBOM(ctx, src, cfg)
	if err != nil {
		return err
	}
	enc, err := spdxjson.NewFormatEncoderWithConfig(spdxjson.DefaultEncoderConfig())
	if err != nil {
		return err
	}
	var doc bytes.Buffer
	if err := enc.Encode(&doc, *s); err != nil {
		return err
	}
	out, err := json.Marshal(statement{
		Type:          "https://in-toto.io/Statement/v0.1",
		PredicateType: "https://spdx.dev/Document",
		Predicate:     json.RawMessage(bytes.TrimSpace(doc.Bytes())),
	})
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dest, name+".spdx.json"), append(out, '\n'), 0o644)
}

// syftVersion is the syft module's version this was built with.
func syftVersion() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range info.Deps {
			if dep.Path == "github.com/anchore/syft" {
				return dep.Version
			}
		}
	}
	return "unknown"
}
