package store_test

import (
	"encoding/binary"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/sre-tools/deployer/store"
)

var genTestdata = flag.Bool("gen-testdata", false, "rewrite testdata/state-v1.db with the schema 1 layout")

const v1File = "testdata/state-v1.db"

func be(v uint64) []byte {
	k := make([]byte, 8)
	binary.BigEndian.PutUint64(k, v)
	return k
}

// writeV1 writes a state file exactly as schema 1 laid it out (commit
// 85577ed): meta/schema=1; runs, steps (nested per run), instances
// (repo NUL name), repos; JSON values.
func writeV1(t *testing.T, path string) {
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		put := func(bucket string, k []byte, v string) {
			b, err := tx.CreateBucketIfNotExists([]byte(bucket))
			if err != nil {
				t.Fatal(err)
			}
			if err := b.Put(k, []byte(v)); err != nil {
				t.Fatal(err)
			}
		}
		put("meta", []byte("schema"), string(be(1)))
		put("runs", be(1), `{"id":1,"repo":"fra","triggers":[{"kind":"push","at":"2026-01-01T00:00:00Z"}],"commit":"c1","status":"succeeded","started":"2026-01-01T00:00:00Z","ended":"2026-01-01T00:01:00Z"}`)
		put("runs", be(2), `{"id":2,"repo":"ams","status":"failed","error":"boom","started":"2026-01-01T00:02:00Z"}`)
		put("runs", be(3), `{"id":3,"repo":"fra","status":"running","started":"2026-01-01T00:03:00Z","instances":[{"name":"viatris","status":"not-started"}]}`)
		tx.Bucket([]byte("runs")).SetSequence(3)
		steps, _ := tx.CreateBucketIfNotExists([]byte("steps"))
		s1, _ := steps.CreateBucket(be(1))
		s1.Put(be(1), []byte(`{"run":1,"seq":1,"instance":"viatris","step":"instance-configure","attempt":1,"status":"succeeded","argv":["scripts/configure.sh"],"exit_code":0}`))
		s1.SetSequence(1)
		put("instances", []byte("fra\x00viatris"), `{"repo":"fra","name":"viatris","deployed":"c1","last_status":"succeeded","last_run":1,"updated":"2026-01-01T00:01:00Z"}`)
		put("repos", []byte("fra"), `{"name":"fra","head":"c1","deployed":"c1","last_run":1}`)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestMigrateFromSchema1(t *testing.T) {
	if *genTestdata {
		os.Remove(v1File)
		writeV1(t, v1File)
	}
	data, err := os.ReadFile(v1File)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "state.db")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	s := mustOpenAt(t, path, store.Options{})

	runs, err := s.Runs("fra", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 2 || runs[0].ID != 3 || runs[1].ID != 1 || runs[1].Triggers[0].Kind != "push" {
		t.Fatalf("fra runs got %+v", runs)
	}
	ids, err := s.InterruptRunning()
	if err != nil || !reflect.DeepEqual(ids, []store.RunID{3}) {
		t.Fatalf("interrupt got %v, %v; want [3]", ids, err)
	}
	steps, _ := s.Steps(1)
	if len(steps) != 1 || steps[0].Step != "instance-configure" {
		t.Fatalf("steps got %+v", steps)
	}
	if id, _ := s.CreateRun(store.Run{Repo: "ams"}); id != 4 {
		t.Fatalf("new run got id %d, want 4", id)
	}
	if inst, _ := s.Instances("fra"); len(inst) != 1 || inst[0].Deployed != "c1" {
		t.Fatalf("instances got %+v", inst)
	}
	if _, isNew, err := s.Raise(store.Intervention{Kind: "auth-failed", Repo: "fra"}); err != nil || !isNew {
		t.Fatalf("raise after migration: %v", err)
	}
	if m, err := s.Enqueue(store.Message{Channel: "slack"}); err != nil || len(m.DeliveryID) < 3 {
		t.Fatalf("enqueue after migration: %+v, %v", m, err)
	}
	s.Close()
	if v := schemaOnDisk(t, path); v != store.SchemaVersion {
		t.Fatalf("schema on disk %d, want %d", v, store.SchemaVersion)
	}
	if v := schemaOnDisk(t, v1File); v != 1 {
		t.Fatalf("testdata schema %d, want 1 (the fixture must stay a schema 1 file)", v)
	}
}

func schemaOnDisk(t *testing.T, path string) uint64 {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v uint64
	db.View(func(tx *bolt.Tx) error {
		v = binary.BigEndian.Uint64(tx.Bucket([]byte("meta")).Get([]byte("schema")))
		return nil
	})
	return v
}

// A damaged schema 1 file is salvaged into schema 2, its per-run step
// buckets flattened.
func TestSalvageSchema1File(t *testing.T) {
	data, err := os.ReadFile(v1File)
	if err != nil {
		t.Fatal(err)
	}
	// Destroy the freelist page header: the trees stay readable.
	le := binary.LittleEndian
	meta := func(off int) []byte { return data[off+16 : off+16+64] }
	m := meta(0)
	if m1 := meta(int(le.Uint32(m[8:]))); le.Uint64(m1[48:]) > le.Uint64(m[48:]) {
		m = m1
	}
	pageSize, freelist := int(le.Uint32(m[8:])), int(le.Uint64(m[32:]))
	for i := 0; i < 16; i++ {
		data[freelist*pageSize+i] ^= 0xFF
	}
	path := filepath.Join(t.TempDir(), "state.db")
	os.WriteFile(path, data, 0o600)

	s, rep := checkSalvage(t, path, data)
	if rep.SchemaVersion != 1 || rep.Recovered["runs"] != 3 || rep.Recovered["steps"] != 1 {
		t.Fatalf("report %+v", rep)
	}
	steps, _ := s.Steps(1)
	if len(steps) != 1 || steps[0].Step != "instance-configure" {
		t.Fatalf("steps got %+v", steps)
	}
	if ids, _ := s.InterruptRunning(); !reflect.DeepEqual(ids, []store.RunID{3, 4}) { // 4: made by checkSalvage
		t.Fatalf("running runs got %v, want [3 4]", ids)
	}
}

// Schema 3 kept the last fire times in the repo records; schema 4 moves
// them to schedule records and rewrites the repo records without them.
func TestMigrateSchedulesOutOfRepoState(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket([]byte("schedules")); err != nil {
			return err
		}
		if err := tx.Bucket([]byte("meta")).Put([]byte("schema"), be(3)); err != nil {
			return err
		}
		return tx.Bucket([]byte("repos")).Put([]byte("fra"), []byte(
			`{"name":"fra","head":"c1","schedules":{"nightly":"2026-03-01T02:00:00Z","weekly":"2026-02-22T04:00:00Z"}}`))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	s = mustOpenAt(t, path, store.Options{})
	for name, want := range map[string]string{"nightly": "2026-03-01T02:00:00Z", "weekly": "2026-02-22T04:00:00Z"} {
		at, ok, err := s.LastFired("fra", name)
		if err != nil || !ok || at.Format(time.RFC3339) != want {
			t.Errorf("%s: last fired %v %v %v, want %s", name, at, ok, err, want)
		}
	}
	rs, err := s.Repo("fra")
	if err != nil || rs.Head != "c1" || len(rs.Schedules) != 2 {
		t.Fatalf("repo after migration %+v, %v", rs, err)
	}
	s.Close()
	if v := schemaOnDisk(t, path); v != store.SchemaVersion {
		t.Fatalf("schema on disk %d, want %d", v, store.SchemaVersion)
	}
	db, err = bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.View(func(tx *bolt.Tx) error {
		if raw := string(tx.Bucket([]byte("repos")).Get([]byte("fra"))); strings.Contains(raw, "schedules") {
			t.Errorf("repo record still holds the schedules: %s", raw)
		}
		return nil
	})
}
