package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	bolt "go.etcd.io/bbolt"
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
			if err := checkBoltFile(tmp.Name()); err != nil {
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

// checkBoltFile opens a copy (never the daemon's file) read-only and runs
// bbolt's consistency check on it.
func checkBoltFile(path string) error {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		return err
	}
	defer db.Close()
	return db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return err
		}
		return nil
	})
}
