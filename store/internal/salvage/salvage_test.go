package salvage_test

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sre-tools/deployer/store/internal/salvage"
	bolt "go.etcd.io/bbolt"
)

// item is the one record type of the test layout.
type item struct {
	ID      uint64    `json:"id"`
	Name    string    `json:"name"`
	Updated time.Time `json:"updated"`
}

var (
	bucketItems = []byte("items")
	bucketMeta  = []byte("meta")
)

func be(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

var layout = salvage.Layout{
	Meta: bucketMeta, SchemaKey: []byte("schema"),
	Buckets: []salvage.Bucket{{Name: bucketItems, Seq: true, Valid: func(k, v []byte) bool {
		var it item
		return len(k) == 8 && json.Unmarshal(v, &it) == nil
	}}},
	Shapes: []salvage.Shape{{Need: []string{"id", "name", "updated"}, Read: func(v []byte) ([]byte, []byte, time.Time, bool) {
		var it item
		if json.Unmarshal(v, &it) != nil {
			return nil, nil, time.Time{}, false
		}
		return bucketItems, be(it.ID), it.Updated, true
	}}},
}

// writeItems writes n items (each rewritten once, so that freed pages
// hold older versions) to a new bbolt file and returns its path.
func writeItems(t *testing.T, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "src.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	for round := range 2 {
		err := db.Update(func(tx *bolt.Tx) error {
			meta, _ := tx.CreateBucketIfNotExists(bucketMeta)
			meta.Put([]byte("schema"), be(7))
			b, err := tx.CreateBucketIfNotExists(bucketItems)
			if err != nil {
				return err
			}
			for i := 1; i <= n; i++ {
				v, _ := json.Marshal(item{ID: uint64(i), Name: fmt.Sprintf("item %d round %d %s", i, round, strings.Repeat("x", 100)), Updated: t0.Add(time.Duration(round) * time.Hour)})
				if err := b.Put(be(uint64(i)), v); err != nil {
					return err
				}
			}
			return b.SetSequence(uint64(n))
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return path
}

func newOut(t *testing.T) *bolt.DB {
	t.Helper()
	out, err := bolt.Open(filepath.Join(t.TempDir(), "out.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { out.Close() })
	err = out.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucket(bucketItems)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// usedSize is the size of the pages in use (the file may be longer).
func usedSize(t *testing.T, path string) int64 {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int64
	db.View(func(tx *bolt.Tx) error { n = tx.Size(); return nil })
	return n
}

func structure(t *testing.T, path string) error {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return salvage.Structure(f)
}

// A sound file passes every check and is copied whole.
func TestSoundFile(t *testing.T) {
	path := writeItems(t, 300)
	if err := structure(t, path); err != nil {
		t.Fatalf("structure of a sound file: %v", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	sum, err := salvage.Verify(db)
	db.Close()
	if err != nil || sum == 0 {
		t.Fatalf("verify a sound file: %d, %v", sum, err)
	}
	out := newOut(t)
	rep, err := salvage.Into(path, out, layout)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Recovered["items"] != 300 || len(rep.Incomplete) != 0 || rep.SchemaVersion != 7 || rep.RawRecovered != 0 {
		t.Fatalf("report %+v", rep)
	}
	out.View(func(tx *bolt.Tx) error {
		if seq := tx.Bucket(bucketItems).Sequence(); seq != 300 {
			t.Errorf("sequence %d, want 300", seq)
		}
		return nil
	})
}

// A truncated file fails the structure check (bbolt would read past its
// end), and the raw scan recovers the records the tree walk cannot reach,
// each in its freshest version found.
func TestTruncatedFile(t *testing.T) {
	path := writeItems(t, 300)
	if err := os.Truncate(path, usedSize(t, path)*6/10); err != nil {
		t.Fatal(err)
	}
	var d *salvage.Damage
	if err := structure(t, path); !errors.As(err, &d) || len(d.Problems) == 0 {
		t.Fatalf("structure of a truncated file: %v, want *Damage", err)
	}
	out := newOut(t)
	rep, err := salvage.Into(path, out, layout)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("report %+v", rep)
	if rep.Recovered["items"] < 100 || rep.RawRecovered == 0 || len(rep.Incomplete) != 1 {
		t.Fatalf("report %+v: want at least 100 items, some by raw scan, items incomplete", rep)
	}
	// Where both versions of an item survived, the fresher one wins.
	data, _ := os.ReadFile(path)
	fresh := 0
	out.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketItems).ForEach(func(k, v []byte) error {
			id := binary.BigEndian.Uint64(k)
			want := fmt.Sprintf(`"item %d round 0 `, id)
			if r1 := fmt.Sprintf(`"item %d round 1 `, id); strings.Contains(string(data), r1) {
				want = r1
				fresh++
			}
			if !strings.Contains(string(v), want) {
				t.Errorf("key %x holds %s, want %s", k, v, want)
			}
			return nil
		})
	})
	if fresh == 0 {
		t.Fatal("no item's newer version survived the cut: the test proves nothing")
	}
}

// A file of garbage fails the structure check and salvages nothing, with
// the reason in the report.
func TestGarbageFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "garbage.db")
	if err := os.WriteFile(path, []byte(strings.Repeat("not a bbolt file ", 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	var d *salvage.Damage
	if err := structure(t, path); !errors.As(err, &d) || !strings.Contains(d.Error(), "meta") {
		t.Fatalf("structure of garbage: %v", err)
	}
	rep, err := salvage.Into(path, newOut(t), layout)
	if err != nil || rep.Recovered["items"] != 0 || len(rep.Problems) == 0 {
		t.Fatalf("salvage of garbage: %+v, %v", rep, err)
	}
}

func TestProtectTurnsPanicsIntoErrors(t *testing.T) {
	pages := []int{1, 2}
	at := len(pages) + 1
	err := salvage.Protect(func() error {
		_ = pages[at] // a runtime panic, as a bad offset makes in bbolt
		return nil
	})
	if !errors.Is(err, salvage.ErrPanicked) || !strings.Contains(err.Error(), "out of range") {
		t.Fatalf("got %v, want ErrPanicked", err)
	}
	if err := salvage.Protect(func() error { return nil }); err != nil {
		t.Fatal(err)
	}
}
