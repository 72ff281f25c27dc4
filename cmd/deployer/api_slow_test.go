package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sre-tools/deployer/api"
	"github.com/sre-tools/deployer/daemon"
	"github.com/sre-tools/deployer/store"
)

// syncBuffer is a bytes sink safe for the logger's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestBackupStalledClient: a client that asks for a backup and never reads
// holds nothing: status, runs, /metrics, /healthz and the watchdog's
// Alive answer meanwhile, the state takes writes, and the stalled
// connection is cut by the chunk deadline with a short body. A backup read
// to the end is a valid state file, and no snapshot file is left behind.
func TestBackupStalledClient(t *testing.T) {
	old := apiDeadlines
	apiDeadlines = api.Deadlines{Chunk: 500 * time.Millisecond}
	t.Cleanup(func() { apiDeadlines = old })

	dir := t.TempDir()
	stateDir := filepath.Join(dir, "state")
	d, err := daemon.New(daemon.Options{Host: "h1", StateDir: stateDir, Logger: zerolog.Nop(),
		Repos: []daemon.RepoConfig{{Name: "cc", URL: "file:///nonexistent"}}}) // not served: deployments stay queued
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	ctx := context.Background()
	// Grow the state well past what socket buffers hold (about 12 MB of
	// incompressible deployment specs), so a client that does not read
	// blocks the server's writes.
	deploy := func(size int) {
		t.Helper()
		b := make([]byte, size/2)
		_, _ = rand.Read(b)
		if _, err := d.Deploy(ctx, "cc", api.DeployRequest{Select: "instances/" + hex.EncodeToString(b) + ".xml"}); err != nil {
			t.Fatal(err)
		}
	}
	for range 24 {
		deploy(512 << 10)
	}

	logs := &syncBuffer{}
	cfg := &Config{StateDir: stateDir, Listen: ListenConfig{Socket: filepath.Join(dir, "api.sock")}}
	servers, _, err := serveAPI(cfg, d, zerolog.New(logs))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, s := range servers {
			s.Close()
		}
	})

	raw, err := net.Dial("unix", cfg.Listen.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_ = raw.(*net.UnixConn).SetReadBuffer(4096)
	if _, err := io.WriteString(raw, "GET /v1/backup HTTP/1.1\r\nHost: deployer\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // the server is streaming into full buffers now

	c := api.NewUnixClient(cfg.Listen.Socket)
	quick := func(what string, fn func(context.Context) error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		start := time.Now()
		if err := fn(ctx); err != nil {
			t.Errorf("%s while a backup client stalls: %v", what, err)
			return
		}
		if took := time.Since(start); took > 3*time.Second {
			t.Errorf("%s took %s while a backup client stalls, want under 3s", what, took.Round(time.Millisecond))
		}
		t.Logf("%s answered in %s while a backup client stalls", what, time.Since(start).Round(time.Millisecond))
	}
	raw200 := func(path string) func(context.Context) error {
		return func(ctx context.Context) error {
			body, err := c.Raw(ctx, path)
			if err != nil {
				return err
			}
			defer body.Close()
			_, err = io.Copy(io.Discard, body)
			return err
		}
	}
	quick("status", func(ctx context.Context) error { _, err := c.Status(ctx); return err })
	quick("runs", func(ctx context.Context) error { _, err := c.Runs(ctx, "", 10); return err })
	quick("/metrics", raw200("/metrics"))
	quick("/healthz", raw200("/healthz"))
	quick("watchdog Alive", func(context.Context) error { return d.Alive(time.Second) })
	// Writes that grow the file need bbolt's remap, which waits for every
	// open read transaction; readers queue behind that writer.
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		for range 8 {
			deploy(1 << 20)
		}
	}()
	quick("status during writes that grow the state", func(ctx context.Context) error {
		time.Sleep(100 * time.Millisecond)
		_, err := c.Status(ctx)
		return err
	})
	quick("deploy (writes that grow the state)", func(ctx context.Context) error {
		select {
		case <-wrote:
			return nil
		case <-ctx.Done():
			return errors.New("the writes did not finish")
		}
	})

	// The stalled connection is cut: reading now gets the headers, what
	// the buffers held, then the end, short of Content-Length.
	time.Sleep(4 * apiDeadlines.Chunk)
	_ = raw.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(raw)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read backup answer: %v", err)
	}
	if resp.StatusCode != http.StatusOK || resp.ContentLength <= 0 {
		t.Fatalf("backup answered %s with Content-Length %d", resp.Status, resp.ContentLength)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the stalled backup connection was not cut: still open after %d of %d bytes", n, resp.ContentLength)
	}
	if n >= resp.ContentLength {
		t.Fatalf("the stalled client got the whole backup (%d bytes): the test did not stall it", n)
	}
	t.Logf("stalled backup cut after %d of %d bytes (%v)", n, resp.ContentLength, err)
	if !strings.Contains(logs.String(), "client too slow or gone") {
		t.Errorf("no log line about the cut backup; log:\n%s", logs.String())
	}

	// A client that reads gets a complete, valid copy.
	body, err := c.Raw(ctx, "/v1/backup")
	if err != nil {
		t.Fatal(err)
	}
	copyPath := filepath.Join(dir, "copy.db")
	f, err := os.Create(copyPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(f, body); err != nil {
		t.Fatal(err)
	}
	body.Close()
	f.Close()
	if _, err := store.CheckFile(copyPath); err != nil {
		t.Fatalf("backup copy: %v", err)
	}
	left, _ := filepath.Glob(filepath.Join(stateDir, ".backup-*"))
	if len(left) > 0 {
		t.Errorf("snapshot files left behind: %v", left)
	}
}
