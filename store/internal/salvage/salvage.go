package salvage

import (
	"bytes"
	"encoding/binary"
	"os"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Layout describes the records of a file to salvage.
type Layout struct {
	// Meta is the bucket of file-wide values, never taken for records;
	// SchemaKey the key in it that holds the schema version (big-endian
	// uint64), reported in Report.SchemaVersion.
	Meta, SchemaKey []byte
	// Buckets are the buckets whose records are copied, in priority
	// order: each is copied in its own transaction, and the raw scan adds
	// records in this order.
	Buckets []Bucket
	// Shapes recognise a record found by the raw scan, without its bucket,
	// by the fields of its JSON value; the first that fits is used.
	Shapes []Shape
}

// Bucket says how the records of one bucket are salvaged.
type Bucket struct {
	Name []byte
	// Seq says the keys are big-endian sequence numbers: the copy's
	// sequence is moved past the largest key, so new records do not
	// reuse an id.
	Seq bool
	// Valid reports whether a record read from the damaged file can be
	// kept; nil keeps every record.
	Valid func(k, v []byte) bool
	// Nested says the bucket held one nested bucket per parent key (an
	// older layout): its records are copied flat, under parent key ‖ key.
	Nested bool
}

// Shape recognises one kind of record by its JSON value.
type Shape struct {
	// Need lists fields the value must have, Not fields it must not.
	Need, Not []string
	// Read decodes the value and returns the bucket and key the record is
	// stored under and when it was last changed (the freshest version of
	// a key wins); false when the value does not decode.
	Read func(v []byte) (bucket, key []byte, fresh time.Time, ok bool)
}

// Report counts what Into copied.
type Report struct {
	// Problems are what the salvage met (the damaged file unreadable,
	// the raw scan failing).
	Problems []string
	// SchemaVersion of the damaged file, 0 when unreadable.
	SchemaVersion uint64
	// Recovered counts the records copied per bucket, Dropped the records
	// found but invalid; Incomplete lists the buckets that could not be
	// read to the end (records in the damaged pages are lost).
	Recovered  map[string]int
	Dropped    map[string]int
	Incomplete []string
	// RawRecovered counts the records (included in Recovered) found by
	// scanning pages directly, where the bucket tree was broken.
	RawRecovered int
}

// Into copies what can be read from the damaged bbolt file src into out,
// whose buckets (those of l.Buckets) must exist: first by walking the
// bucket trees with plain reads, skipping damaged subtrees, then, for the
// buckets that walk could not read in full, by scanning all leaf pages.
// A record already in out is kept. The caller rebuilds whatever it derives
// from the records (indexes) afterwards.
func Into(src string, out *bolt.DB, l Layout) (*Report, error) {
	rep := &Report{Recovered: map[string]int{}, Dropped: map[string]int{}}
	var names []string
	for _, b := range l.Buckets {
		names = append(names, string(b.Name))
	}
	root, pageSize, err := readDamaged(src)
	if err != nil {
		rep.Problems = append(rep.Problems, "salvage: "+err.Error())
		rep.Incomplete = names
	} else if err := copyTree(out, root, l, rep); err != nil {
		return rep, err
	}
	var todo []string
	for _, b := range names {
		if slices.Contains(rep.Incomplete, b) {
			todo = append(todo, b)
		}
	}
	if len(todo) == 0 {
		return rep, nil
	}
	recs, err := rawScan(src, pageSize, l)
	if err != nil {
		rep.Problems = append(rep.Problems, "raw scan: "+err.Error())
		return rep, nil
	}
	return rep, mergeRaw(out, recs, todo, l, rep)
}

// readDamaged reads the bucket tree of src as far as it goes, and returns
// it with the file's page size.
func readDamaged(src string) (*rawBucket, int, error) {
	f, err := os.Open(src)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	m, err := bestMeta(f, fi.Size())
	if err != nil {
		return nil, 0, err
	}
	return newRawDB(f, m, true).readRoot(m.root), int(m.pageSize), nil
}

// pair is a key and value read from a damaged file.
type pair struct {
	k, v []byte
}

// copyTree copies the buckets of l from root into out, in order, one write
// transaction per bucket.
func copyTree(out *bolt.DB, root *rawBucket, l Layout, rep *Report) error {
	if meta := root.subs[string(l.Meta)]; meta != nil {
		for _, p := range meta.pairs {
			if bytes.Equal(p.k, l.SchemaKey) && len(p.v) == 8 {
				rep.SchemaVersion = binary.BigEndian.Uint64(p.v)
			}
		}
	}
	for _, spec := range l.Buckets {
		name := string(spec.Name)
		b := root.subs[name]
		if b == nil {
			if root.damaged {
				rep.Incomplete = append(rep.Incomplete, name)
			}
			continue
		}
		if spec.Nested {
			flattenNested(b)
		}
		err := out.Update(func(tx *bolt.Tx) error {
			n, err := copyPairs(b, tx.Bucket(spec.Name), spec, rep)
			rep.Recovered[name] += n
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// flattenNested turns the nested buckets of b (parent key -> key -> value)
// into pairs of b (parent key ‖ key -> value).
func flattenNested(b *rawBucket) {
	for parent, sub := range b.subs {
		for _, p := range sub.pairs {
			b.pairs = append(b.pairs, pair{k: append([]byte(parent), p.k...), v: p.v})
		}
		b.damaged = b.damaged || sub.damaged
	}
	b.subs = nil
}

// copyPairs writes the valid pairs of src into dst and moves dst's
// sequence past every copied key.
func copyPairs(src *rawBucket, dst *bolt.Bucket, spec Bucket, rep *Report) (int, error) {
	name := string(spec.Name)
	if src.damaged && !slices.Contains(rep.Incomplete, name) {
		rep.Incomplete = append(rep.Incomplete, name)
	}
	rep.Dropped[name] += len(src.subs)
	n, seq := 0, src.seq
	for _, p := range src.pairs {
		if spec.Valid != nil && !spec.Valid(p.k, p.v) {
			rep.Dropped[name]++
			continue
		}
		if spec.Seq && keySeq(p.k) > seq {
			seq = keySeq(p.k)
		}
		if err := dst.Put(bytes.Clone(p.k), bytes.Clone(p.v)); err != nil {
			return n, err
		}
		n++
	}
	if spec.Seq && dst.Sequence() < seq {
		return n, dst.SetSequence(seq)
	}
	return n, nil
}

// keySeq decodes a big-endian sequence key, 0 when it is not 8 bytes.
func keySeq(k []byte) uint64 {
	if len(k) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(k)
}
