package gitobj

import (
	"bytes"
	"compress/zlib"
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
)

// packOf builds a pack of whole objects.
func packOf(t *testing.T, objs ...[]byte) []byte {
	t.Helper()
	var b bytes.Buffer
	b.WriteString("PACK")
	_ = binary.Write(&b, binary.BigEndian, uint32(2))
	_ = binary.Write(&b, binary.BigEndian, uint32(len(objs)))
	for _, o := range objs {
		var hdr [16]byte
		n := packEntryHeader(hdr[:], plumbing.BlobObject, uint64(len(o)))
		b.Write(hdr[:n])
		zw, _ := zlib.NewWriterLevel(&b, zlib.BestSpeed)
		if _, err := zw.Write(o); err != nil {
			t.Fatal(err)
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
	}
	sum := sha1.Sum(b.Bytes())
	b.Write(sum[:])
	return b.Bytes()
}

func emptyStore(t *testing.T) *IndexingStorage {
	t.Helper()
	dot := filepath.Join(t.TempDir(), ".git")
	if err := os.MkdirAll(filepath.Join(dot, "objects", "pack"), 0o755); err != nil {
		t.Fatal(err)
	}
	return NewRepoStorage(osfs.New(dot))
}

// TestStoreFetchedSmallPackLoose: a small pack is stored as loose objects that go-git and
// our reader both read back.
func TestStoreFetchedSmallPackLoose(t *testing.T) {
	st := emptyStore(t)
	defer st.Close()
	a, b := []byte("<instance name=\"a\"/>\n"), bytes.Repeat([]byte("<param/>\n"), 500)
	before := PacksUnpacked.Load()
	if err := st.StoreFetched(bytes.NewReader(packOf(t, a, b)), nil); err != nil {
		t.Fatal(err)
	}
	if PacksUnpacked.Load() != before+1 {
		t.Fatal("the pack was not stored as loose objects")
	}
	for _, want := range [][]byte{a, b} {
		h := plumbing.ComputeHash(plumbing.BlobObject, want)
		if _, err := os.Stat(st.loosePath(h)); err != nil {
			t.Fatalf("loose %s: %v", h, err)
		}
		if _, err := st.Storage.EncodedObject(plumbing.BlobObject, h); err != nil {
			t.Fatalf("go-git reads %s: %v", h, err)
		}
		if _, got, err := st.readStored(h); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("readStored %s: %v", h, err)
		}
	}
	if fresh, ok := st.Fresh(plumbing.ComputeHash(plumbing.BlobObject, b)); !ok || !bytes.Equal(fresh, b) {
		t.Fatal("the unpacked blob is not kept for the checkout move")
	}
}

// TestStoreFetchedLargeContentGoesToDisk: a pack of one object whose content is larger than
// what unpacking may hold in memory (a few hundred KB of zlib declaring 130 MB) is written to
// disk and indexed as a pack instead, never unpacked in memory.
func TestStoreFetchedLargeContentGoesToDisk(t *testing.T) {
	st := emptyStore(t)
	defer st.Close()
	big := make([]byte, maxUnpackContent+2<<20)
	unpacked, indexed := PacksUnpacked.Load(), PacksIndexed.Load()
	if err := st.StoreFetched(bytes.NewReader(packOf(t, big)), nil); err != nil {
		t.Fatal(err)
	}
	if PacksUnpacked.Load() != unpacked || PacksIndexed.Load() != indexed+1 {
		t.Fatalf("unpacked %d, indexed %d: want the pack indexed on disk", PacksUnpacked.Load()-unpacked, PacksIndexed.Load()-indexed)
	}
	if ok, err := st.Has(plumbing.ComputeHash(plumbing.BlobObject, big)); !ok || err != nil {
		t.Fatalf("Has: %v %v", ok, err)
	}
}

// TestStoreFetchedRejectsBadPacks: a pack whose checksum does not match, or that is cut
// short, is refused with an error that reads as a pack that does not parse, and leaves no
// object behind.
func TestStoreFetchedRejectsBadPacks(t *testing.T) {
	good := packOf(t, []byte("one\n"), []byte("two\n"))
	flipped := bytes.Clone(good)
	flipped[20] ^= 0xff
	for name, pack := range map[string][]byte{"checksum": flipped, "cut": good[:len(good)-25], "signature": append([]byte("JUNK"), good[4:]...)} {
		st := emptyStore(t)
		err := st.StoreFetched(bytes.NewReader(pack), nil)
		_ = st.Close()
		if err == nil {
			t.Fatalf("%s: stored", name)
		}
		if !bytes.Contains([]byte(err.Error()), []byte("pack")) {
			t.Fatalf("%s: %v", name, err)
		}
		loose, _ := filepath.Glob(filepath.Join(filepath.Dir(st.packDir), "??", "*"))
		if len(loose) > 0 {
			t.Fatalf("%s: left %v", name, loose)
		}
	}
}

// mkDelta returns a git delta that copies all of base (shorter than 64 KiB) and appends add
// (at most 127 bytes).
func mkDelta(base, add []byte) []byte {
	varint := func(b []byte, v uint64) []byte {
		for v >= 0x80 {
			b = append(b, byte(v)|0x80)
			v >>= 7
		}
		return append(b, byte(v))
	}
	d := varint(nil, uint64(len(base)))
	d = varint(d, uint64(len(base)+len(add)))
	d = append(d, 0x80|0x10|0x20, byte(len(base)), byte(len(base)>>8)) // copy offset 0, size len(base)
	d = append(d, byte(len(add)))
	return append(d, add...)
}

// thinPack builds a pack of the whole blobs whole and of REF deltas (base hash, delta).
func thinPack(t *testing.T, whole [][]byte, refs []struct {
	base  plumbing.Hash
	delta []byte
}) []byte {
	t.Helper()
	var b bytes.Buffer
	b.WriteString("PACK")
	_ = binary.Write(&b, binary.BigEndian, uint32(2))
	_ = binary.Write(&b, binary.BigEndian, uint32(len(whole)+len(refs)))
	entry := func(typ plumbing.ObjectType, size int, prefix, data []byte) {
		var hdr [16]byte
		n := packEntryHeader(hdr[:], typ, uint64(size))
		b.Write(hdr[:n])
		b.Write(prefix)
		zw, _ := zlib.NewWriterLevel(&b, zlib.BestSpeed)
		_, _ = zw.Write(data)
		_ = zw.Close()
	}
	for _, o := range whole {
		entry(plumbing.BlobObject, len(o), nil, o)
	}
	for _, r := range refs {
		entry(plumbing.REFDeltaObject, len(r.delta), r.base[:], r.delta)
	}
	sum := sha1.Sum(b.Bytes())
	b.Write(sum[:])
	return b.Bytes()
}

// TestStoreFetchedThinChains: a thin pack whose REF delta A is made against an object of the
// store and whose REF delta B is made against A (the pack's own delta) is completed and
// stored, small (loose objects) and large (a pack of 100 objects or more); a base that is
// nowhere fails with ErrMissingBase and stores nothing.
func TestStoreFetchedThinChains(t *testing.T) {
	x := bytes.Repeat([]byte("<param name=\"x\"/>\n"), 40)
	a := append(bytes.Clone(x), "<a/>\n"...)
	bb := append(bytes.Clone(a), "<b/>\n"...)
	hx, ha, hb := plumbing.ComputeHash(plumbing.BlobObject, x), plumbing.ComputeHash(plumbing.BlobObject, a), plumbing.ComputeHash(plumbing.BlobObject, bb)
	// B first: its base, A, comes later in the pack, and is itself a delta against x.
	refs := []struct {
		base  plumbing.Hash
		delta []byte
	}{{ha, mkDelta(a, []byte("<b/>\n"))}, {hx, mkDelta(x, []byte("<a/>\n"))}}
	for _, padding := range []int{0, 120} {
		var whole [][]byte
		for i := 0; i < padding; i++ {
			whole = append(whole, []byte(fmt.Sprintf("<pad n=\"%d\"/>\n", i)))
		}
		st := emptyStore(t)
		if err := storeLoose(st, hx, plumbing.BlobObject, x); err != nil {
			t.Fatal(err)
		}
		if err := st.StoreFetched(bytes.NewReader(thinPack(t, whole, refs)), nil); err != nil {
			t.Fatalf("padding %d: %v", padding, err)
		}
		for h, want := range map[plumbing.Hash][]byte{ha: a, hb: bb} {
			if _, got, err := st.readStored(h); err != nil || !bytes.Equal(got, want) {
				t.Fatalf("padding %d: %s: %v", padding, h, err)
			}
		}
		_ = st.Close()
		// The same pack on a store without x.
		st = emptyStore(t)
		err := st.StoreFetched(bytes.NewReader(thinPack(t, whole, refs)), nil)
		if !errors.Is(err, ErrMissingBase) {
			t.Fatalf("padding %d, no base: %v, want ErrMissingBase", padding, err)
		}
		left, _ := filepath.Glob(filepath.Join(filepath.Dir(st.packDir), "*", "*"))
		if len(left) > 0 {
			t.Fatalf("padding %d, no base: left %v", padding, left)
		}
		_ = st.Close()
	}
}

// rawPack builds a pack of entries (declared type and size, and the content actually
// deflated), after 120 small blobs so that it takes the indexer's path.
func rawPack(t *testing.T, entries ...struct {
	typ  plumbing.ObjectType
	size int
	data []byte
}) []byte {
	t.Helper()
	var b bytes.Buffer
	b.WriteString("PACK")
	_ = binary.Write(&b, binary.BigEndian, uint32(2))
	_ = binary.Write(&b, binary.BigEndian, uint32(120+len(entries)))
	put := func(typ plumbing.ObjectType, size int, data []byte) {
		var hdr [16]byte
		n := packEntryHeader(hdr[:], typ, uint64(size))
		b.Write(hdr[:n])
		zw, _ := zlib.NewWriterLevel(&b, zlib.BestSpeed)
		_, _ = zw.Write(data)
		_ = zw.Close()
	}
	for i := 0; i < 120; i++ {
		d := []byte(fmt.Sprintf("<pad n=\"%d\"/>\n", i))
		put(plumbing.BlobObject, len(d), d)
	}
	for _, e := range entries {
		put(e.typ, e.size, e.data)
	}
	sum := sha1.Sum(b.Bytes())
	b.Write(sum[:])
	return b.Bytes()
}

// TestStoreFetchedRefusesLyingPacks: on the indexer's path, an object that inflates to fewer
// bytes than it declares (its hash would not be its content's), an object of an invalid
// type, a size past the bound and a delta declaring a 1 GiB target from a few bytes are
// refused as packs that do not parse, nothing is stored, and the delta's target is never
// allocated.
func TestStoreFetchedRefusesLyingPacks(t *testing.T) {
	type entry = struct {
		typ  plumbing.ObjectType
		size int
		data []byte
	}
	base := []byte("<instance name=\"base\"/>\n")
	hb := plumbing.ComputeHash(plumbing.BlobObject, base)
	var huge []byte
	huge = append(huge, byte(len(base)))              // base size
	huge = append(huge, 0x80, 0x80, 0x80, 0x80, 0x04) // target size: 1 GiB
	huge = append(huge, 0x80|0x10, byte(len(base)))   // copy the base
	cases := map[string][]entry{
		"short":     {{plumbing.BlobObject, 200, bytes.Repeat([]byte("x"), 150)}},
		"type 5":    {{plumbing.ObjectType(5), 3, []byte("abc")}},
		"too large": {{plumbing.BlobObject, maxObjectSize + 1, []byte("a")}},
	}
	for name, es := range cases {
		st := emptyStore(t)
		err := st.StoreFetched(bytes.NewReader(rawPack(t, es...)), nil)
		if err == nil || !strings.Contains(err.Error(), "malformed") {
			t.Fatalf("%s: %v, want a malformed pack", name, err)
		}
		if packs, _ := filepath.Glob(filepath.Join(st.packDir, "*")); len(packs) > 0 {
			t.Fatalf("%s: left %v", name, packs)
		}
		_ = st.Close()
	}
	// The 1 GiB delta, against a base of the store, on the indexer's path.
	st := emptyStore(t)
	defer st.Close()
	if err := storeLoose(st, hb, plumbing.BlobObject, base); err != nil {
		t.Fatal(err)
	}
	pack := thinPack(t, padding(120), []struct {
		base  plumbing.Hash
		delta []byte
	}{{hb, huge}})
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	err := st.StoreFetched(bytes.NewReader(pack), nil)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, packfile.ErrInvalidDelta) {
		t.Fatalf("1 GiB delta: %v, want an invalid delta", err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 64<<20 {
		t.Fatalf("1 GiB delta: %d MB allocated", got>>20)
	}
}

func padding(n int) [][]byte {
	var out [][]byte
	for i := 0; i < n; i++ {
		out = append(out, []byte(fmt.Sprintf("<pad n=\"%d\"/>\n", i)))
	}
	return out
}
