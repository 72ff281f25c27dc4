package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The raw scan reads leaf pages straight from the damaged file, without
// bbolt, to find records whose bucket tree can no longer be walked (a
// truncated file loses its newest root page first). Pages that bbolt has
// freed still hold older versions of records, so for each key the freshest
// version wins, and a record deleted by retention may come back. It is only
// used for buckets that bbolt could not read in full.

const (
	leafPageFlag    = 0x02
	bucketLeafFlag  = 0x01
	leafElementSize = 16
	inBucketSize    = 16
)

// rawRecord is one version of a record found by the raw scan.
type rawRecord struct {
	bucket []byte // primary bucket
	key    []byte
	value  []byte
	fresh  time.Time
}

// rawScan returns the freshest version of every journal entry,
// intervention, run and step record found in leaf pages of the file at
// path, keyed by bucket, sub-bucket and key.
func rawScan(path string, pageSize int) (map[string]rawRecord, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if pageSize <= 0 {
		pageSize = os.Getpagesize()
	}
	out := map[string]rawRecord{}
	var loose []byte // consecutive pages that are not leaf pages
	buf := make([]byte, pageSize)
	for pg := int64(2); ; pg++ {
		n, err := f.ReadAt(buf, pg*int64(pageSize))
		if n < pageHeaderSize {
			loose = append(loose, buf[:n]...)
			break
		}
		if page := rawPage(f, buf[:n], pg, pageSize); page != nil {
			carve(loose, out)
			loose = loose[:0]
			scanLeaf(page, nil, out)
			pg += int64(len(page)/pageSize) - 1
		} else if !isStructural(buf[:n], pg) {
			loose = append(loose, buf[:n]...)
		}
		if err == io.EOF {
			break
		}
	}
	carve(loose, out)
	return out, nil
}

// isStructural reports whether buf is a sound branch, meta or freelist
// page, which hold no records.
func isStructural(buf []byte, pg int64) bool {
	le := binary.LittleEndian
	if int64(le.Uint64(buf)) != pg {
		return false
	}
	switch le.Uint16(buf[8:]) {
	case branchPageFlag, 0x04, freelistPageFlag:
		return true
	}
	return false
}

// rawPage returns the bytes of leaf page pg (with its overflow pages), or
// nil when pg does not start a leaf page.
func rawPage(f *os.File, first []byte, pg int64, pageSize int) []byte {
	le := binary.LittleEndian
	if int64(le.Uint64(first)) != pg || le.Uint16(first[8:]) != leafPageFlag {
		return nil
	}
	overflow := int64(le.Uint32(first[12:]))
	if overflow == 0 {
		return first
	}
	if overflow > 1<<16 {
		return nil
	}
	whole := make([]byte, (overflow+1)*int64(pageSize))
	n, _ := f.ReadAt(whole, pg*int64(pageSize))
	return whole[:n]
}

// scanLeaf reads the elements of one leaf page; bucket is the name of the
// bucket the page is known to belong to (inline buckets), nil if unknown.
func scanLeaf(page, bucket []byte, out map[string]rawRecord) {
	le := binary.LittleEndian
	count := int(le.Uint16(page[10:]))
	for i := 0; i < count; i++ {
		at := pageHeaderSize + i*leafElementSize
		if at+leafElementSize > len(page) {
			return
		}
		flags := le.Uint32(page[at:])
		pos, ksize, vsize := int(le.Uint32(page[at+4:])), int(le.Uint32(page[at+8:])), int(le.Uint32(page[at+12:]))
		ks := at + pos
		if pos < 0 || ksize < 0 || vsize < 0 || ks+ksize+vsize > len(page) || ks+ksize+vsize < ks {
			continue
		}
		k, v := page[ks:ks+ksize], page[ks+ksize:ks+ksize+vsize]
		if flags&bucketLeafFlag != 0 {
			scanInline(k, v, bucket, out)
			continue
		}
		if rec, ok := classify(bucket, k, v); ok {
			keep(out, rec)
		}
	}
}

// scanInline descends into an inline bucket (root page 0): a small bucket
// stored inside its parent's leaf.
func scanInline(name, v, parent []byte, out map[string]rawRecord) {
	if len(v) < inBucketSize+pageHeaderSize || binary.LittleEndian.Uint64(v) != 0 {
		return
	}
	page := v[inBucketSize:]
	if binary.LittleEndian.Uint16(page[8:]) != leafPageFlag {
		return
	}
	if parent == nil {
		scanLeaf(page, name, out)
	}
}

func keep(out map[string]rawRecord, rec rawRecord) {
	id := string(rec.bucket) + "\x00" + string(rec.key)
	if old, ok := out[id]; ok && !rec.fresh.After(old.fresh) && (rec.fresh.Before(old.fresh) || len(rec.value) <= len(old.value)) {
		return
	}
	rec.key, rec.value = bytes.Clone(rec.key), bytes.Clone(rec.value)
	out[id] = rec
}

// classify recognises a record found in a leaf page under key k, by its
// bucket when known, or by its shape.
func classify(bucket, k, v []byte) (rawRecord, bool) {
	if bucket != nil && !isPrimary(bucket) {
		bucket = nil // a nested bucket of unknown parent: go by shape
	}
	if bytes.Equal(bucket, bucketMeta) {
		return rawRecord{}, false
	}
	rec, ok := recognise(v)
	if !ok || !bytes.Equal(rec.key, k) || (bucket != nil && !bytes.Equal(bucket, rec.bucket)) {
		return rawRecord{}, false
	}
	return rec, true
}

// recognise decides from its fields which kind of record v is, and
// derives the key it is stored under.
func recognise(v []byte) (rawRecord, bool) {
	if len(v) == 0 || v[0] != '{' {
		return rawRecord{}, false
	}
	var probe map[string]json.RawMessage
	if json.Unmarshal(v, &probe) != nil {
		return rawRecord{}, false
	}
	has := func(names ...string) bool {
		for _, n := range names {
			if _, ok := probe[n]; !ok {
				return false
			}
		}
		return true
	}
	for _, sh := range shapes {
		if has(sh.need...) && !has1(has, sh.not) {
			return sh.read(v)
		}
	}
	return rawRecord{}, false
}

func has1(has func(...string) bool, names []string) bool {
	for _, n := range names {
		if has(n) {
			return true
		}
	}
	return false
}

// shape tells one kind of record from the others by its JSON fields.
type shape struct {
	need, not []string
	read      func(v []byte) (rawRecord, bool)
}

func record[T any](v []byte, fn func(T) rawRecord) (rawRecord, bool) {
	var x T
	if json.Unmarshal(v, &x) != nil {
		return rawRecord{}, false
	}
	r := fn(x)
	r.value = v
	return r, true
}

var shapes = []shape{
	{need: []string{"id", "kind", "first_seen", "state"}, read: func(v []byte) (rawRecord, bool) {
		return record(v, func(iv Intervention) rawRecord {
			return rawRecord{bucket: bucketInterventions, key: u64key(iv.ID), fresh: latest(iv.LastSeen, iv.AckAt, iv.ResolvedAt, iv.Notified)}
		})
	}},
	{need: []string{"run", "seq", "step"}, read: func(v []byte) (rawRecord, bool) {
		return record(v, func(st StepRecord) rawRecord {
			return rawRecord{bucket: bucketSteps, key: stepKey(st.Run, uint64(st.Seq)), fresh: latest(st.Started, st.Ended)}
		})
	}},
	{need: []string{"id", "file", "state", "created"}, read: func(v []byte) (rawRecord, bool) {
		return record(v, func(e JournalEntry) rawRecord {
			return rawRecord{bucket: bucketJournal, key: []byte(e.ID), fresh: e.Updated}
		})
	}},
	{need: []string{"id", "repo", "status", "started"}, not: []string{"kind", "step"}, read: func(v []byte) (rawRecord, bool) {
		return record(v, func(r Run) rawRecord {
			return rawRecord{bucket: bucketRuns, key: u64key(uint64(r.ID)), fresh: latest(r.Started, r.Ended)}
		})
	}},
	{need: []string{"seq", "delivery_id", "channel"}, read: func(v []byte) (rawRecord, bool) {
		return record(v, func(m Message) rawRecord {
			return rawRecord{bucket: bucketOutbox, key: u64key(m.Seq), fresh: latest(m.Created, m.NextAttempt, m.SentAt)}
		})
	}},
	{need: []string{"id", "repo", "state", "created", "updated"}, not: []string{"file", "kind"}, read: func(v []byte) (rawRecord, bool) {
		return record(v, func(d Deployment) rawRecord {
			return rawRecord{bucket: bucketDeployments, key: []byte(d.ID), fresh: d.Updated}
		})
	}},
	{need: []string{"repo", "name", "updated"}, not: []string{"id"}, read: func(v []byte) (rawRecord, bool) {
		return record(v, func(st InstanceState) rawRecord {
			return rawRecord{bucket: bucketInstances, key: instanceKey(st.Repo, st.Name), fresh: st.Updated}
		})
	}},
	{need: []string{"repo", "schedule", "last_fired"}, read: func(v []byte) (rawRecord, bool) {
		return record(v, func(st ScheduleState) rawRecord {
			return rawRecord{bucket: bucketSchedules, key: scheduleKey(st.Repo, st.Schedule), fresh: latest(st.Updated, st.LastFired)}
		})
	}},
	{need: []string{"name"}, not: []string{"repo", "id", "run"}, read: func(v []byte) (rawRecord, bool) {
		return record(v, func(st RepoState) rawRecord {
			return rawRecord{bucket: bucketRepos, key: []byte(st.Name), fresh: latest(st.LastSync, st.LastSyncOK)}
		})
	}},
}

// carve finds JSON records in bytes that are not a readable leaf page (a
// page whose header was destroyed), deriving each record's key from its
// fields.
func carve(buf []byte, out map[string]rawRecord) {
	for i := 0; i < len(buf); {
		j := bytes.Index(buf[i:], []byte(`{"`))
		if j < 0 {
			return
		}
		start := i + j
		dec := json.NewDecoder(bytes.NewReader(buf[start:]))
		var raw json.RawMessage
		if dec.Decode(&raw) != nil {
			i = start + 2
			continue
		}
		if rec, ok := recognise(raw); ok {
			keep(out, rec)
		}
		i = start + int(dec.InputOffset())
	}
}

func latest(ts ...time.Time) time.Time {
	var m time.Time
	for _, t := range ts {
		if t.After(m) {
			m = t
		}
	}
	return m
}

// mergeRaw adds raw-scan records of the given buckets that the tree walk
// did not recover.
func mergeRaw(out *bolt.DB, recs map[string]rawRecord, buckets []string, rep *SalvageReport) error {
	want := map[string]bool{}
	for _, b := range buckets {
		want[b] = true
	}
	return out.Update(func(tx *bolt.Tx) error {
		for _, pass := range primaryBuckets { // steps after runs
			if !want[string(pass)] {
				continue
			}
			for _, rec := range recs {
				if !bytes.Equal(rec.bucket, pass) {
					continue
				}
				added, err := mergeOne(tx, rec)
				if err != nil {
					return err
				}
				if added {
					rep.Recovered[string(pass)]++
					rep.RawRecovered++
				}
			}
		}
		return nil
	})
}

func mergeOne(tx *bolt.Tx, rec rawRecord) (bool, error) {
	b := tx.Bucket(rec.bucket)
	if b.Get(rec.key) != nil {
		return false, nil
	}
	if err := b.Put(rec.key, rec.value); err != nil {
		return false, err
	}
	if isSeqBucket(rec.bucket) && b.Sequence() < keyU64(rec.key) {
		return true, b.SetSequence(keyU64(rec.key))
	}
	return true, nil
}

func isSeqBucket(name []byte) bool {
	for _, b := range [][]byte{bucketInterventions, bucketRuns, bucketOutbox} {
		if bytes.Equal(b, name) {
			return true
		}
	}
	return false
}

func isPrimary(name []byte) bool {
	for _, b := range primaryBuckets {
		if bytes.Equal(b, name) {
			return true
		}
	}
	return bytes.Equal(name, bucketMeta)
}
