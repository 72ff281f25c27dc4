package salvage

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
	bucket []byte // one of the layout's buckets
	key    []byte
	value  []byte
	fresh  time.Time
}

// scanner collects the freshest version of each record it recognises.
type scanner struct {
	l   Layout
	out map[string]rawRecord // bucket NUL key -> record
}

// rawScan returns the freshest version of every record the layout
// recognises in the leaf pages of the file at path (and in the bytes of
// pages whose header is destroyed), keyed by bucket NUL key.
func rawScan(path string, pageSize int, l Layout) (map[string]rawRecord, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if pageSize <= 0 {
		pageSize = os.Getpagesize()
	}
	sc := &scanner{l: l, out: map[string]rawRecord{}}
	var loose []byte // consecutive pages that are not leaf pages
	buf := make([]byte, pageSize)
	for pg := int64(2); ; pg++ {
		n, err := f.ReadAt(buf, pg*int64(pageSize))
		if n < pageHeaderSize {
			loose = append(loose, buf[:n]...)
			break
		}
		if page := rawPage(f, buf[:n], pg, pageSize); page != nil {
			sc.carve(loose)
			loose = loose[:0]
			sc.scanLeaf(page, nil)
			pg += int64(len(page)/pageSize) - 1
		} else if !isStructural(buf[:n], pg) {
			loose = append(loose, buf[:n]...)
		}
		if err == io.EOF {
			break
		}
	}
	sc.carve(loose)
	return sc.out, nil
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
func (sc *scanner) scanLeaf(page, bucket []byte) {
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
			sc.scanInline(k, v, bucket)
			continue
		}
		if rec, ok := sc.classify(bucket, k, v); ok {
			sc.keep(rec)
		}
	}
}

// scanInline descends into an inline bucket (root page 0): a small bucket
// stored inside its parent's leaf.
func (sc *scanner) scanInline(name, v, parent []byte) {
	if len(v) < inBucketSize+pageHeaderSize || binary.LittleEndian.Uint64(v) != 0 {
		return
	}
	page := v[inBucketSize:]
	if binary.LittleEndian.Uint16(page[8:]) != leafPageFlag {
		return
	}
	if parent == nil {
		sc.scanLeaf(page, name)
	}
}

// keep stores rec unless a fresher (or, as fresh, longer) version of the
// same record is already kept.
func (sc *scanner) keep(rec rawRecord) {
	id := string(rec.bucket) + "\x00" + string(rec.key)
	if old, ok := sc.out[id]; ok && !rec.fresh.After(old.fresh) && (rec.fresh.Before(old.fresh) || len(rec.value) <= len(old.value)) {
		return
	}
	rec.key, rec.value = bytes.Clone(rec.key), bytes.Clone(rec.value)
	sc.out[id] = rec
}

// classify recognises a record found in a leaf page under key k, by its
// bucket when known, or by its shape.
func (sc *scanner) classify(bucket, k, v []byte) (rawRecord, bool) {
	if bucket != nil && !sc.known(bucket) {
		bucket = nil // a nested bucket of unknown parent: go by shape
	}
	if bytes.Equal(bucket, sc.l.Meta) {
		return rawRecord{}, false
	}
	rec, ok := sc.recognise(v)
	if !ok || !bytes.Equal(rec.key, k) || (bucket != nil && !bytes.Equal(bucket, rec.bucket)) {
		return rawRecord{}, false
	}
	return rec, true
}

// known reports whether name is the meta bucket or one of the layout's.
func (sc *scanner) known(name []byte) bool {
	return bytes.Equal(name, sc.l.Meta) || sc.l.bucket(name) != nil
}

// bucket returns the layout's bucket called name, nil if none.
func (l Layout) bucket(name []byte) *Bucket {
	for i := range l.Buckets {
		if bytes.Equal(l.Buckets[i].Name, name) {
			return &l.Buckets[i]
		}
	}
	return nil
}

// Recognise tells, as the raw scan does, which bucket and key the JSON
// record v belongs under; false when no shape fits.
func (l Layout) Recognise(v []byte) (bucket, key []byte, ok bool) {
	rec, ok := (&scanner{l: l}).recognise(v)
	return rec.bucket, rec.key, ok
}

// recognise decides from its fields which kind of record v is, and
// derives the key it is stored under.
func (sc *scanner) recognise(v []byte) (rawRecord, bool) {
	if len(v) == 0 || v[0] != '{' {
		return rawRecord{}, false
	}
	var probe map[string]json.RawMessage
	if json.Unmarshal(v, &probe) != nil {
		return rawRecord{}, false
	}
	has := func(name string) bool { _, ok := probe[name]; return ok }
	for _, sh := range sc.l.Shapes {
		if !allOf(sh.Need, has) || anyOf(sh.Not, has) {
			continue
		}
		bucket, key, fresh, ok := sh.Read(v)
		if !ok {
			return rawRecord{}, false
		}
		return rawRecord{bucket: bucket, key: key, value: v, fresh: fresh}, true
	}
	return rawRecord{}, false
}

func allOf(names []string, has func(string) bool) bool {
	for _, n := range names {
		if !has(n) {
			return false
		}
	}
	return true
}

func anyOf(names []string, has func(string) bool) bool {
	for _, n := range names {
		if has(n) {
			return true
		}
	}
	return false
}

// carve finds JSON records in bytes that are not a readable leaf page (a
// page whose header was destroyed), deriving each record's key from its
// fields.
func (sc *scanner) carve(buf []byte) {
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
		if rec, ok := sc.recognise(raw); ok {
			sc.keep(rec)
		}
		i = start + int(dec.InputOffset())
	}
}

// mergeRaw adds the raw-scan records of the given buckets that the tree
// walk did not recover, in the layout's bucket order.
func mergeRaw(out *bolt.DB, recs map[string]rawRecord, buckets []string, l Layout, rep *Report) error {
	want := map[string]bool{}
	for _, b := range buckets {
		want[b] = true
	}
	return out.Update(func(tx *bolt.Tx) error {
		for _, pass := range l.Buckets {
			if !want[string(pass.Name)] {
				continue
			}
			for _, rec := range recs {
				if !bytes.Equal(rec.bucket, pass.Name) {
					continue
				}
				added, err := mergeOne(tx, rec, pass)
				if err != nil {
					return err
				}
				if added {
					rep.Recovered[string(pass.Name)]++
					rep.RawRecovered++
				}
			}
		}
		return nil
	})
}

func mergeOne(tx *bolt.Tx, rec rawRecord, spec Bucket) (bool, error) {
	b := tx.Bucket(rec.bucket)
	if b.Get(rec.key) != nil {
		return false, nil
	}
	if err := b.Put(rec.key, rec.value); err != nil {
		return false, err
	}
	if spec.Seq && b.Sequence() < keySeq(rec.key) {
		return true, b.SetSequence(keySeq(rec.key))
	}
	return true, nil
}
