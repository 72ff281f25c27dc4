package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/sre-tools/deployer/store"
)

func newBackupCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "backup FILE",
		Short: "Write a consistent online copy of the daemon's state file to FILE",
		Long: `Write a consistent copy of the state file, taken by the running daemon in one
read transaction (runs keep going). The copy is checked before it replaces FILE.

Exit status: 0 written and checked, 1 error.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			body, err := c.Raw(cmd.Context(), "/v1/backup")
			if err != nil {
				return err
			}
			defer body.Close()
			dst := args[0]
			tmp, err := os.CreateTemp(filepath.Dir(dst), ".backup-*")
			if err != nil {
				return err
			}
			defer os.Remove(tmp.Name())
			n, err := io.Copy(tmp, body)
			if err == nil {
				err = tmp.Sync()
			}
			if cerr := tmp.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("backup: %w", err)
			}
			if _, err := store.CheckFile(tmp.Name()); err != nil {
				return fmt.Errorf("backup copy failed its check (FILE left untouched): %w", err)
			}
			if err := os.Rename(tmp.Name(), dst); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (%d bytes, checked)\n", dst, n)
			return nil
		},
	}
}
