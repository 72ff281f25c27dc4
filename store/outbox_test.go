package store_test

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sre-tools/deployer/store"
)

func deliveryIDs(ms []store.Message) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.DeliveryID)
	}
	return out
}

func TestOutboxDeliveryWithRetriesSurvivesReopen(t *testing.T) {
	clk := newClock()
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := store.Open(path, store.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	m1, _ := s.Enqueue(store.Message{Channel: "slack", Kind: "new", InterventionID: 1, Payload: json.RawMessage(`{"text":"a"}`)})
	m2, _ := s.Enqueue(store.Message{Channel: "jira", Kind: "new", InterventionID: 1})
	if m1.DeliveryID == "" || m1.DeliveryID == m2.DeliveryID || !strings.HasSuffix(m1.DeliveryID, "-1") {
		t.Fatalf("delivery ids %q %q", m1.DeliveryID, m2.DeliveryID)
	}
	p, _ := s.Pending(0)
	if got, want := deliveryIDs(p), []string{m1.DeliveryID, m2.DeliveryID}; !reflect.DeepEqual(got, want) {
		t.Fatalf("pending got %v, want %v", got, want)
	}
	if err := s.MarkFailed(m1.DeliveryID, "503", clk.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkSent(m2.DeliveryID); err != nil {
		t.Fatal(err)
	}
	if p, _ := s.Pending(0); len(p) != 0 {
		t.Fatalf("before the retry time got %v, want none", deliveryIDs(p))
	}
	s.Close()

	// A restart resends what was not acknowledged, with the same delivery id.
	clk.Advance(time.Minute)
	s = mustOpenAt(t, path, store.Options{Now: clk.Now})
	p, _ = s.Pending(0)
	if len(p) != 1 || p[0].DeliveryID != m1.DeliveryID || p[0].Attempts != 1 || p[0].LastError != "503" || string(p[0].Payload) != `{"text":"a"}` {
		t.Fatalf("after restart got %+v", p)
	}
	m3, _ := s.Enqueue(store.Message{Channel: "slack"})
	if m3.Seq <= m2.Seq {
		t.Fatalf("sequence went back: %d after %d", m3.Seq, m2.Seq)
	}
	if p, _ := s.Pending(1); len(p) != 1 || p[0].DeliveryID != m1.DeliveryID {
		t.Fatalf("limit 1 got %v", deliveryIDs(p))
	}
	if err := s.MarkSent("bogus-1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("forged id got %v, want ErrNotFound", err)
	}
	got, _ := s.Message(m2.DeliveryID)
	if !got.Sent() {
		t.Fatalf("got %+v, want sent", got)
	}
}
