package gitobj

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"time"

	"github.com/go-git/go-git/v5/plumbing/format/index"
	"github.com/go-git/go-git/v5/plumbing/hash"
	"github.com/go-git/go-git/v5/storage"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// The index format's constants, as go-git's encoder (v5.19.3) uses them.
const (
	idxEntryHeaderLength = 62 // stat data, mode, ids, size, hash and flags
	idxEntryExtended     = 0x4000
	idxNameMask          = 0xfff
	idxIntentToAdd       = 1 << 13
	idxSkipWorktree      = 1 << 14
)

// EncodeIndex writes idx to w exactly as go-git's index.NewEncoder(w).Encode(idx) does
// (v5.19.3): the same bytes, the same error, and the same side effect (idx.Entries sorted by
// name with go-git's unstable sort). go-git writes no extension (idx.Cache, ResolveUndo,
// EndOfIndexEntry and Link are dropped) and sets the extended flag of an intent-to-add or
// skip-worktree entry whatever the version; so does this. The file is built in one buffer
// and hashed once, where go-git calls encoding/binary.Write per field. Versions other than
// 2, 3 and 4 go to go-git's encoder; so does nothing else.
func EncodeIndex(w io.Writer, idx *index.Index) error {
	b, err := MarshalIndex(idx)
	if len(b) > 0 {
		if _, werr := w.Write(b); werr != nil {
			return werr
		}
	}
	return err
}

// MarshalIndex returns the bytes EncodeIndex writes for idx. When go-git's encoder fails, it
// returns what go-git would have written before failing and go-git's error (an entry's
// timestamp before 1970: index.ErrInvalidTimestamp; a version above 4 or below 2).
func MarshalIndex(idx *index.Index) ([]byte, error) {
	v := idx.Version
	if v != 2 && v != 3 && v != 4 {
		// Above 4: go-git's ErrUnsupportedVersion before any byte; 0 and 1: go-git writes a
		// header, then fails on the first entry's name. Its encoder writes these.
		var buf bytesWriter
		err := index.NewEncoder(&buf).Encode(idx)
		return buf, err
	}
	ents := idx.Entries
	sortByName(ents)

	size := 12 + 20
	for _, e := range ents {
		// fixed part, extended flags, name, and at most 8 bytes of padding (v2, v3) or a
		// 10-byte strip length and the NUL (v4)
		size += idxEntryHeaderLength + 2 + len(e.Name) + 11
	}
	b := make([]byte, 0, size)
	b = append(b, 'D', 'I', 'R', 'C')
	b = binary.BigEndian.AppendUint32(b, v)
	b = binary.BigEndian.AppendUint32(b, uint32(len(ents)))

	var last string
	for i, e := range ents {
		csec, cnsec, ok := indexTime(&e.CreatedAt)
		msec, mnsec, ok2 := indexTime(&e.ModifiedAt)
		if !ok || !ok2 {
			return b, index.ErrInvalidTimestamp
		}
		start := len(b)
		b = b[:start+idxEntryHeaderLength]
		p := b[start:]
		binary.BigEndian.PutUint32(p[0:], csec)
		binary.BigEndian.PutUint32(p[4:], cnsec)
		binary.BigEndian.PutUint32(p[8:], msec)
		binary.BigEndian.PutUint32(p[12:], mnsec)
		binary.BigEndian.PutUint32(p[16:], e.Dev)
		binary.BigEndian.PutUint32(p[20:], e.Inode)
		binary.BigEndian.PutUint32(p[24:], uint32(e.Mode))
		binary.BigEndian.PutUint32(p[28:], e.UID)
		binary.BigEndian.PutUint32(p[32:], e.GID)
		binary.BigEndian.PutUint32(p[36:], e.Size)
		copy(p[40:60], e.Hash[:])
		flags := uint16(e.Stage&0x3) << 12
		if l := len(e.Name); l < idxNameMask {
			flags |= uint16(l)
		} else {
			flags |= idxNameMask
		}
		entryLen := idxEntryHeaderLength
		if e.IntentToAdd || e.SkipWorktree {
			var ext uint16
			if e.IntentToAdd {
				ext |= idxIntentToAdd
			}
			if e.SkipWorktree {
				ext |= idxSkipWorktree
			}
			binary.BigEndian.PutUint16(p[60:], flags|idxEntryExtended)
			b = binary.BigEndian.AppendUint16(b, ext)
			entryLen += 2
		} else {
			binary.BigEndian.PutUint16(p[60:], flags)
		}
		if v == 4 {
			prefix, strip := 0, 0
			if i > 0 {
				prefix = commonNamePrefix(last, e.Name)
				strip = len(last) - prefix
			}
			last = e.Name
			b = appendVarWidth(b, int64(strip))
			b = append(b, e.Name[prefix:]...)
			b = append(b, 0)
			continue
		}
		b = append(b, e.Name...)
		// go-git pads with 1 to 8 NULs: 8 - wrote%8, never 0
		pad := 8 - (entryLen+len(e.Name))%8
		b = append(b, make([]byte, pad)...)
	}
	h := hash.New(hash.CryptoType)
	h.Write(b)
	return h.Sum(b), nil
}

// bytesWriter collects what go-git's encoder writes.
type bytesWriter []byte

func (w *bytesWriter) Write(p []byte) (int, error) {
	*w = append(*w, p...)
	return len(p), nil
}

// indexTime is go-git's timeToUint32: 0, 0 for the zero time; not ok for a time before
// 1970 or past what UnixNano holds.
func indexTime(t *time.Time) (sec, nsec uint32, ok bool) {
	if t.IsZero() {
		return 0, 0, true
	}
	if t.Unix() < 0 || t.UnixNano() < 0 {
		return 0, 0, false
	}
	return uint32(t.Unix()), uint32(t.Nanosecond()), true
}

func commonNamePrefix(a, b string) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

// appendVarWidth appends n as go-git's binary.WriteVariableWidthInt writes it (git's offset
// encoding: big-endian groups of 7 bits, each but the last with the high bit, minus one per
// continuation).
func appendVarWidth(b []byte, n int64) []byte {
	var buf [10]byte
	i := len(buf) - 1
	buf[i] = byte(n & 0x7f)
	n >>= 7
	for n != 0 {
		n--
		i--
		buf[i] = 0x80 | byte(n&0x7f)
		n >>= 7
	}
	return append(b, buf[i:]...)
}

// byName is go-git's sort order for the encoder: by name only, with sort.Sort (not stable).
type byName []*index.Entry

func (l byName) Len() int           { return len(l) }
func (l byName) Swap(i, j int)      { l[i], l[j] = l[j], l[i] }
func (l byName) Less(i, j int) bool { return l[i].Name < l[j].Name }

// sortByName orders ents as go-git's encoder does. Entries already in strictly increasing
// order (no two with one name) are the one order any sort gives, so they are left as they
// are; otherwise sort.Sort, with go-git's Less and Swap, permutes entries of one name (the
// stages of a conflict) exactly as go-git's call does.
func sortByName(ents []*index.Entry) {
	for i := 1; i < len(ents); i++ {
		if ents[i-1].Name >= ents[i].Name {
			sort.Sort(byName(ents))
			return
		}
	}
}

// IndexLockError is a write of the index refused because index.lock exists: another git
// process may be writing the index, or one was killed while it did.
type IndexLockError struct{ Lock string }

func (e *IndexLockError) Error() string {
	return fmt.Sprintf("%s exists: another git process may be writing this checkout's index; if none is running, remove %s and retry", e.Lock, e.Lock)
}

// writeIndexFile writes idx (EncodeIndex) to path as git does: into path+".lock", created
// exclusively, then renamed over path. A lock that exists fails the write with an
// *IndexLockError and leaves path as it was; a failed write removes the lock it created.
// The lock is created with mode 0666 less the umask, as go-git's SetIndex creates the file.
func writeIndexFile(path string, idx *index.Index) error {
	b, err := MarshalIndex(idx)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	lock := path + ".lock"
	f, err := os.OpenFile(lock, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
	if errors.Is(err, os.ErrExist) {
		return &IndexLockError{Lock: lock}
	}
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(lock, path)
	}
	if err != nil {
		_ = os.Remove(lock)
		return err
	}
	return nil
}

// indexFileOf reports whether st is a go-git filesystem storage (ours or go-git's) whose
// index file is path: its SetIndex writes path, and Store may write it itself.
func indexFileOf(st storage.Storer, path string) bool {
	var fs *filesystem.Storage
	switch s := st.(type) {
	case *filesystem.Storage:
		fs = s
	case *IndexingStorage:
		if s != nil {
			fs = s.Storage
		}
	}
	if fs == nil || filepath.Base(path) != "index" {
		return false
	}
	// The storage's directory is path's when both stat as one directory of the OS (a billy
	// filesystem in memory does not; billy's chroot wraps the OS's FileInfo, Sys is the OS's).
	a, err := fs.Filesystem().Stat(".")
	if err != nil {
		return false
	}
	b, err := os.Stat(filepath.Dir(path))
	if err != nil {
		return false
	}
	sa, ok := a.Sys().(*syscall.Stat_t)
	sb, ok2 := b.Sys().(*syscall.Stat_t)
	return ok && ok2 && sa.Dev == sb.Dev && sa.Ino == sb.Ino
}
