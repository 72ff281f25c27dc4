package store_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	deployer "github.com/sre-tools/deployer"
	"github.com/sre-tools/deployer/store"
)

// Instances are read by key, and by file through the instance_file index:
// a rename of an instance's file moves its index entry, and of two
// instances recorded with one file the last one written is found.
func TestInstanceByKeyAndFile(t *testing.T) {
	s := mustOpenStore(t)
	set := func(name, file string) {
		t.Helper()
		if err := s.SetInstance(store.InstanceState{Repo: "fra", Name: name, File: file, Deployed: "c-" + name}); err != nil {
			t.Fatal(err)
		}
	}
	set("viatris", "instances/viatris.xml")
	set("acme", "instances/acme.xml")
	if err := s.SetInstance(store.InstanceState{Repo: "ams", Name: "viatris", File: "instances/viatris.xml", Deployed: "other repo"}); err != nil {
		t.Fatal(err)
	}
	if st, err := s.Instance("fra", "viatris"); err != nil || st.File != "instances/viatris.xml" || st.Deployed != "c-viatris" {
		t.Fatalf("Instance: %+v, %v", st, err)
	}
	if _, err := s.Instance("fra", "nope"); err == nil {
		t.Fatal("Instance of an unknown name: no error")
	}
	if st, err := s.InstanceByFile("fra", "instances/acme.xml"); err != nil || st.Name != "acme" {
		t.Fatalf("InstanceByFile: %+v, %v", st, err)
	}
	set("acme", "instances/acme-eu.xml") // the file renamed
	if st, err := s.InstanceByFile("fra", "instances/acme.xml"); err == nil {
		t.Fatalf("the old file still finds %+v", st)
	}
	if st, err := s.InstanceByFile("fra", "instances/acme-eu.xml"); err != nil || st.Name != "acme" {
		t.Fatalf("InstanceByFile after the rename: %+v, %v", st, err)
	}
	set("viatris-new", "instances/viatris.xml") // the file's key renamed
	if st, err := s.InstanceByFile("fra", "instances/viatris.xml"); err != nil || st.Name != "viatris-new" {
		t.Fatalf("InstanceByFile after the key's rename: %+v, %v", st, err)
	}
	set("viatris", "instances/viatris-old.xml") // the old name moves on: the new name's entry stays
	if st, err := s.InstanceByFile("fra", "instances/viatris.xml"); err != nil || st.Name != "viatris-new" {
		t.Fatalf("InstanceByFile after the old name moved: %+v, %v", st, err)
	}
	if st, err := s.InstanceByFile("ams", "instances/viatris.xml"); err != nil || st.Deployed != "other repo" {
		t.Fatalf("InstanceByFile of the other repo: %+v, %v", st, err)
	}
}

// A schema 4 file (no instance_file index) is migrated: its instances are
// found by file.
func TestMigrateBuildsInstanceFileIndex(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s := mustOpenAt(t, path, store.Options{})
	if err := s.SetInstance(store.InstanceState{Repo: "fra", Name: "viatris", File: "instances/viatris.xml"}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket([]byte("instance_file")); err != nil {
			return err
		}
		return tx.Bucket([]byte("meta")).Put([]byte("schema"), be(4))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	s = mustOpenAt(t, path, store.Options{})
	if st, err := s.InstanceByFile("fra", "instances/viatris.xml"); err != nil || st.Name != "viatris" {
		t.Fatalf("after migration: %+v, %v", st, err)
	}
}

// Step records are stored compact (shared with the run's first record,
// environment values derived from the record's fields) and read back
// exactly as added, whatever they share or not; a record stored in full
// (as schema 4 wrote them) reads as it is.
func TestCompactStepsReadBackExactly(t *testing.T) {
	s := mustOpenStore(t)
	run, _ := s.CreateRun(store.Run{Repo: "fra"})
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	env := func(instance, step, commit string, extra ...string) map[string]string {
		m := map[string]string{"DEPLOYER_INSTANCE": instance, "DEPLOYER_STEP": step, "DEPLOYER_COMMIT": commit,
			"DEPLOYER_RUN": fmt.Sprint(run), "DEPLOYER_HOST": "dep01", "DEPLOYER_REPO": "fra", "PATH": "/usr/bin:/bin",
			"DEPLOYER_OUTPUT": "/tmp/out-" + instance + step}
		for i := 0; i+1 < len(extra); i += 2 {
			if extra[i+1] == "-" {
				delete(m, extra[i])
			} else {
				m[extra[i]] = extra[i+1]
			}
		}
		return m
	}
	rec := func(instance, step, commit string, e map[string]string) store.StepRecord {
		return store.StepRecord{Run: run, StepResult: deployer.StepResult{Instance: instance, Step: step, Attempt: 1, Status: "succeeded",
			Argv: []string{"/bin/true"}, Dir: "/srv/checkout", Env: e, ExitCode: 0, Started: at, Ended: at.Add(time.Second),
			Commit: commit, InstanceBlob: "blob-" + instance, Timeout: "30s", Writes: "instance",
			StepEnv: []string{"PATH"}, AllowStepDirs: []string{"/bin", "/usr/bin"}}}
	}
	want := []store.StepRecord{
		rec("a", "configure", "c1", env("a", "configure", "c1")),
		rec("b", "configure", "c2", env("b", "configure", "c2")),
		rec("c", "redeploy", "c3", env("c", "redeploy", "c3", "PATH", "/opt/bin", "DEPLOYER_HOST", "-", "NEW", "x")),
		rec("d", "redeploy", "c4", env("d", "redeploy", "other-commit")), // DEPLOYER_COMMIT is not the record's
		rec("e", "redeploy", "c5", env("e", "redeploy", "c5", "DEPLOYER_INSTANCE", "-")),
		rec("f", "redeploy", "c6", nil),
		rec("g", "redeploy", "c7", map[string]string{"ONLY": "this"}),
	}
	want[2].Argv, want[2].Dir, want[2].Timeout = []string{"scripts/x.sh", "--instance", "c"}, "/elsewhere", ""
	want[3].StepEnv, want[3].AllowStepDirs, want[3].Writes = nil, []string{"/bin"}, ""
	for i := range want {
		if err := s.AddStep(want[i]); err != nil {
			t.Fatal(err)
		}
		want[i].Seq = i + 1
	}
	got, err := s.Steps(run)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		for i := range want {
			if i < len(got) && !reflect.DeepEqual(got[i], want[i]) {
				t.Errorf("record %d:\ngot  %+v\nwant %+v", i+1, got[i], want[i])
			}
		}
		t.Fatalf("got %d records, want %d", len(got), len(want))
	}
	// A reopened store (no step base in memory) reads and appends the same.
	path := s.Path()
	s.Close()
	s = mustOpenAt(t, path, store.Options{})
	more := rec("h", "configure", "c8", env("h", "configure", "c8"))
	if err := s.AddStep(more); err != nil {
		t.Fatal(err)
	}
	more.Seq = len(want) + 1
	got, err = s.Steps(run)
	if err != nil || !reflect.DeepEqual(got, append(want, more)) {
		t.Fatalf("after reopening: %v\n%+v", err, got)
	}
	one, err := s.RunSteps(run, "c")
	if err != nil || len(one) != 1 || !reflect.DeepEqual(one[0], want[2]) {
		t.Fatalf("RunSteps: %+v, %v", one, err)
	}
}

// A deployment's records in a state file: 5,000 instances, each with two
// step records as the daemon writes them, a journal entry and an instance
// state, take at most 12 MB of pages (the bound is 15 MB for the
// file).
func TestStateSizePerInstance(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 20,000 records")
	}
	dir := t.TempDir()
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "store-size-"); err == nil {
			dir = d
			t.Cleanup(func() { os.RemoveAll(d) })
		}
	}
	s := mustOpenAt(t, filepath.Join(dir, "state.db"), store.Options{})
	run, _ := s.CreateRun(store.Run{Repo: "bench"})
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	const n = 5000
	for i := 0; i < n; i++ {
		name, file, commit := fmt.Sprintf("i%05d", i), fmt.Sprintf("instances/i%05d.xml", i), fmt.Sprintf("%040x", i)
		for _, step := range []string{"configure", "redeploy"} {
			err := s.AddStep(store.StepRecord{Run: run, StepResult: deployer.StepResult{Instance: name, Step: step, Attempt: 1, Status: "succeeded",
				Argv: []string{"/bin/true"}, Dir: "/var/lib/deployer/checkouts/bench",
				Env: map[string]string{"DEPLOYER_COMMIT": commit, "DEPLOYER_DRY_RUN": "0", "DEPLOYER_HOST": "bench", "DEPLOYER_INSTANCE": name,
					"DEPLOYER_INSTANCE_FILE": file, "DEPLOYER_OUTPUT": "/tmp/deployer-output-60402858", "DEPLOYER_REPO": "bench",
					"DEPLOYER_RUN": fmt.Sprint(run), "DEPLOYER_STEP": step, "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
				Started: at, Ended: at.Add(time.Millisecond), Commit: commit, InstanceBlob: fmt.Sprintf("%040x", i+1), Timeout: "30s",
				StepEnv: []string{"PATH", "HOME", "LANG", "TZ"}, AllowStepDirs: []string{"/bin", "/usr/bin"}}})
			if err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.PutJournal(store.JournalEntry{Repo: "bench", Instance: name, File: file, BaseBlob: commit,
			Edits: []byte(`[{"op":"set-attr","path":"/instance","attr":"revision","value":"scale"}]`), Author: "bench",
			Reason: "deploy d000000000000001: bench", Run: fmt.Sprint(run), Deployment: "d000000000000001",
			Trailers: map[string]string{"Deployer-Deployment": "d000000000000001"}, State: store.JournalPushed, Commit: commit}); err != nil {
			t.Fatal(err)
		}
		if err := s.SetInstance(store.InstanceState{Repo: "bench", Name: name, File: file, Deployed: commit, LastStatus: "succeeded", LastRun: run}); err != nil {
			t.Fatal(err)
		}
	}
	path := s.Path()
	s.Close()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if keep := os.Getenv("STORE_SIZE_KEEP"); keep != "" {
		data, _ := os.ReadFile(path)
		_ = os.WriteFile(keep, data, 0o600)
	}
	var used int64
	_ = db.View(func(tx *bolt.Tx) error {
		used = tx.Size()
		return nil
	})
	t.Logf("%d instances: %.1f MB of pages (%.0f bytes per instance)", n, float64(used)/(1<<20), float64(used)/n)
	if used > 12<<20 {
		t.Errorf("%.1f MB of pages for %d instances, want at most 12 MB", float64(used)/(1<<20), n)
	}
}

// A large deployment record (5,000 instances in its spec), rewritten after
// every bucket as the daemon does (with the bucket's journal entries
// between two copies), is stored deflated and reads back as written; the
// file does not grow with each copy.
func TestLargeDeploymentRewrites(t *testing.T) {
	s := mustOpenStore(t)
	details := map[string]map[string]string{}
	for i := 0; i < 5000; i++ {
		details[fmt.Sprintf("i%05d", i)] = map[string]string{"name": fmt.Sprintf("i%05d", i), "file": fmt.Sprintf("instances/i%05d.xml", i), "status": "pending"}
	}
	spec := func() []byte {
		b, err := json.Marshal(map[string]any{"details": details})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	d, err := s.PutDeployment(store.Deployment{Repo: "fra", State: "queued", Spec: spec()})
	if err != nil {
		t.Fatal(err)
	}
	for bucket := 0; bucket < 100; bucket++ {
		var entries []store.JournalEntry
		for i := bucket * 50; i < bucket*50+50; i++ {
			in := details[fmt.Sprintf("i%05d", i)]
			in["status"], in["commit"] = "succeeded", fmt.Sprintf("%040x", i)
			entries = append(entries, store.JournalEntry{Repo: "fra", Instance: in["name"], File: in["file"], State: store.JournalPushed, Commit: in["commit"]})
		}
		if _, err := s.PutJournals(entries); err != nil { // the bucket's other records, between two copies
			t.Fatal(err)
		}
		if _, err := s.UpdateDeployment(d.ID, func(d *store.Deployment) error {
			d.State, d.Spec = "running", spec()
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Deployment(d.ID)
	if err != nil || got.State != "running" || !bytes.Equal(got.Spec, spec()) {
		t.Fatalf("read back: %v, state %q, spec of %d bytes (want %d)", err, got.State, len(got.Spec), len(spec()))
	}
	if list, err := s.Deployments("fra", 0); err != nil || len(list) != 1 || !bytes.Equal(list[0].Spec, spec()) {
		t.Fatalf("Deployments: %v, %d", err, len(list))
	}
	fi, err := os.Stat(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("spec of %d KB rewritten 100 times: file %.1f MB", len(spec())>>10, float64(fi.Size())/(1<<20))
	if fi.Size() > 4<<20 {
		t.Errorf("file of %.1f MB after 100 rewrites of one deployment, want at most 4 MB", float64(fi.Size())/(1<<20))
	}
}
