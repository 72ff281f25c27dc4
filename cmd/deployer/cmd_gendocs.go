package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// newGenDocsCmd is the hidden `deployer gen-docs DIR` the package build
// runs: man pages and shell completions generated from the command tree,
// so they never disagree with the binary they ship with.
func newGenDocsCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "gen-docs DIR",
		Short:  "Write man pages (DIR/man/man1) and bash, zsh and fish completions (DIR/completions)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return genDocs(cmd.Root(), args[0])
		},
	}
}

// genDocs writes DIR/man/man1/deployer*.1 and DIR/completions/deployer.bash,
// _deployer (zsh) and deployer.fish. SOURCE_DATE_EPOCH, when set, dates the
// man pages, so that a package build is reproducible.
func genDocs(root *cobra.Command, dir string) error {
	man := filepath.Join(dir, "man", "man1")
	comp := filepath.Join(dir, "completions")
	for _, d := range []string{man, comp} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	date := time.Now().UTC()
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		var sec int64
		if _, err := fmt.Sscan(s, &sec); err != nil {
			return usageErrorf("SOURCE_DATE_EPOCH %q: want seconds since 1970", s)
		}
		date = time.Unix(sec, 0).UTC()
	}
	root.DisableAutoGenTag = true
	hdr := &doc.GenManHeader{Title: "DEPLOYER", Section: "1", Source: "deployer", Manual: "deployer manual", Date: &date}
	if err := doc.GenManTree(root, hdr, man); err != nil {
		return fmt.Errorf("man pages: %w", err)
	}
	for _, c := range []struct {
		file string
		gen  func(*os.File) error
	}{
		{"deployer.bash", func(f *os.File) error { return root.GenBashCompletionV2(f, true) }},
		{"_deployer", func(f *os.File) error { return root.GenZshCompletion(f) }},
		{"deployer.fish", func(f *os.File) error { return root.GenFishCompletion(f, true) }},
	} {
		f, err := os.Create(filepath.Join(comp, c.file))
		if err != nil {
			return err
		}
		if err := c.gen(f); err != nil {
			f.Close()
			return fmt.Errorf("%s: %w", c.file, err)
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	return nil
}
