package gitobj

import (
	"bytes"
	"compress/zlib"
	"crypto/sha1"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5/plumbing"
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
