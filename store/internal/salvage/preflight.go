package salvage

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"io"
	"os"
)

// bbolt's on-disk format (version 2), as far as preflight needs it.
const (
	boltMagic         = 0xED0CDAED
	boltVersion       = 2
	pageHeaderSize    = 16
	metaChecksumAt    = 56 // offset of the checksum inside the meta
	freelistPageFlag  = 0x10
	pgidNoFreelist    = ^uint64(0)
	maxPreflightPage  = 1 << 24
	minPreflightPage  = 1 << 10
	pageCountSentinel = 0xFFFF
)

type bootMeta struct {
	pageSize, root, freelist, hwm, txid uint64
}

// preflight checks, with plain reads, what bbolt trusts blindly when it
// maps the file: a valid meta page, a file long enough for the pages the
// meta says exist, and a sane freelist header. Reading pages past the end
// of a truncated file through the memory map would kill the process with
// SIGBUS. It returns nil for a missing or empty file. f must be open on
// the file; format problems come back as *Damage, I/O errors as they are.
func preflight(f *os.File) (*bootMeta, error) {
	if f == nil {
		return nil, nil
	}
	fi, err := f.Stat()
	if err != nil || fi.Size() == 0 {
		return nil, err
	}
	m, err := bestMeta(f, fi.Size())
	if err == nil {
		err = checkBounds(f, m, fi.Size())
	}
	if err != nil {
		return m, damaged(err.Error())
	}
	return m, nil
}

func bestMeta(f *os.File, size int64) (*bootMeta, error) {
	m0, err0 := readMeta(f, 0)
	pageSize := uint64(0)
	if err0 == nil {
		pageSize = m0.pageSize
	}
	var m1 *bootMeta
	err1 := fmt.Errorf("no second meta page")
	for ps := uint64(minPreflightPage); ps <= maxPreflightPage && int64(ps) < size; ps <<= 1 {
		if pageSize != 0 && ps != pageSize {
			continue
		}
		if m1, err1 = readMeta(f, int64(ps)); err1 == nil {
			break
		}
	}
	switch {
	case err0 != nil && err1 != nil:
		return nil, fmt.Errorf("both meta pages invalid: %v; %v", err0, err1)
	case err1 != nil:
		return m0, nil
	case err0 != nil || m1.txid > m0.txid:
		return m1, nil
	}
	return m0, nil
}

func readMeta(f *os.File, off int64) (*bootMeta, error) {
	buf := make([]byte, pageHeaderSize+64)
	if _, err := f.ReadAt(buf, off); err != nil {
		return nil, fmt.Errorf("meta at %d: %w", off, err)
	}
	m := buf[pageHeaderSize:]
	le := binary.LittleEndian
	if le.Uint32(m[0:]) != boltMagic {
		return nil, fmt.Errorf("meta at %d: bad magic", off)
	}
	if le.Uint32(m[4:]) != boltVersion {
		return nil, fmt.Errorf("meta at %d: version %d", off, le.Uint32(m[4:]))
	}
	h := fnv.New64a()
	h.Write(m[:metaChecksumAt])
	if h.Sum64() != le.Uint64(m[metaChecksumAt:]) {
		return nil, fmt.Errorf("meta at %d: checksum mismatch", off)
	}
	return &bootMeta{
		pageSize: uint64(le.Uint32(m[8:])), root: le.Uint64(m[16:]),
		freelist: le.Uint64(m[32:]), hwm: le.Uint64(m[40:]), txid: le.Uint64(m[48:]),
	}, nil
}

func checkBounds(f *os.File, m *bootMeta, size int64) error {
	if m.pageSize < minPreflightPage || m.pageSize > maxPreflightPage {
		return fmt.Errorf("page size %d out of range", m.pageSize)
	}
	if m.hwm > uint64(size)/m.pageSize {
		return fmt.Errorf("file is %d bytes but its meta counts %d pages of %d bytes: truncated", size, m.hwm, m.pageSize)
	}
	if m.root < 2 || m.root >= m.hwm {
		return fmt.Errorf("root page %d outside [2, %d)", m.root, m.hwm)
	}
	if m.freelist == pgidNoFreelist {
		return nil
	}
	if m.freelist < 2 || m.freelist >= m.hwm {
		return fmt.Errorf("freelist page %d outside [2, %d)", m.freelist, m.hwm)
	}
	return checkFreelist(f, m)
}

// checkFreelist refuses a freelist page whose header would make bbolt
// allocate or read beyond the file.
func checkFreelist(f *os.File, m *bootMeta) error {
	buf := make([]byte, pageHeaderSize+8)
	if _, err := f.ReadAt(buf, int64(m.freelist*m.pageSize)); err != nil && err != io.EOF {
		return fmt.Errorf("freelist page %d: %w", m.freelist, err)
	}
	le := binary.LittleEndian
	id, flags := le.Uint64(buf[0:]), le.Uint16(buf[8:])
	count, overflow := uint64(le.Uint16(buf[10:])), uint64(le.Uint32(buf[12:]))
	if id != m.freelist || flags != freelistPageFlag {
		return fmt.Errorf("freelist page %d: header says page %d flags %#x", m.freelist, id, flags)
	}
	if m.freelist+overflow >= m.hwm {
		return fmt.Errorf("freelist page %d: overflow %d past the end", m.freelist, overflow)
	}
	if count == pageCountSentinel {
		count = le.Uint64(buf[pageHeaderSize:]) + 1
	}
	if count*8 > (overflow+1)*m.pageSize {
		return fmt.Errorf("freelist page %d: %d ids do not fit in %d pages", m.freelist, count, overflow+1)
	}
	return nil
}
