package store_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sre-tools/deployer/store"
)

// outboxLoop is the child of TestOutboxSurvivesKill: a notifier that
// enqueues and delivers as fast as it can, saying what it did.
func outboxLoop(path string) {
	s, err := store.Open(path, store.Options{})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	for i := 0; ; i++ {
		m, err := s.Enqueue(store.Message{Channel: "slack", Kind: "new", InterventionID: uint64(i)})
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println("enqueued", m.DeliveryID)
		if i%3 == 0 { // every third delivery fails and waits for a retry
			continue
		}
		if err := s.MarkSent(m.DeliveryID); err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println("sent", m.DeliveryID)
	}
}

// TestOutboxSurvivesKill kills -9 a notifier in the middle of a burst:
// after restart every enqueued message is there, nothing reported sent is
// pending again, and everything else is pending with its delivery id.
func TestOutboxSurvivesKill(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "STORE_TEST_OUTBOX_LOOP="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.AfterFunc(60*time.Second, func() { cmd.Process.Kill() })
	defer deadline.Stop()
	enqueued, sent := map[string]bool{}, map[string]bool{}
	lines := bufio.NewScanner(out)
	for lines.Scan() && len(sent) < 300 {
		f := strings.Fields(lines.Text())
		switch {
		case len(f) == 2 && f[0] == "enqueued":
			enqueued[f[1]] = true
		case len(f) == 2 && f[0] == "sent":
			sent[f[1]] = true
		default:
			t.Fatalf("child: %s", lines.Text())
		}
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if len(sent) < 300 {
		t.Fatalf("child delivered only %d messages before the deadline", len(sent))
	}

	s := mustOpenAt(t, path, store.Options{})
	if s.Salvaged() != nil {
		t.Fatalf("file needed a salvage after kill -9: %+v", s.Salvaged())
	}
	pending, err := s.Pending(0)
	if err != nil {
		t.Fatal(err)
	}
	isPending := map[string]bool{}
	for _, m := range pending {
		isPending[m.DeliveryID] = true
		if sent[m.DeliveryID] {
			t.Errorf("%s was delivered but is pending again", m.DeliveryID)
		}
	}
	for id := range enqueued {
		m, err := s.Message(id)
		if err != nil {
			t.Errorf("enqueued %s lost: %v", id, err)
			continue
		}
		if !sent[id] && !m.Sent() && !isPending[id] {
			t.Errorf("%s neither sent nor pending", id)
		}
	}
	t.Logf("%d enqueued, %d sent, %d pending after kill -9", len(enqueued), len(sent), len(pending))
}
