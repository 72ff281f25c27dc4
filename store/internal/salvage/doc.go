// Package salvage checks a bbolt file with plain, bounds-checked reads
// before bbolt maps it, and copies what can still be read from a damaged
// file into a fresh one. It knows bbolt's on-disk format (version 2) but
// none of the records stored in it: the caller describes its buckets and
// how to recognise its records in a Layout.
//
// bbolt trusts the file it maps: a truncated file makes it read past the
// end of its memory map (SIGBUS), and a bad offset in a page makes it
// build pointers outside the map, which crashes the garbage collector
// beyond any recover. Structure checks the meta pages, the length, the
// freelist and every page of every bucket tree before bbolt opens the
// file; Verify then reads every key and value through bbolt under Protect
// and runs bbolt's own Check. Their findings come back as *Damage.
//
// Into copies a damaged file's records into an open bbolt file: first by
// walking the bucket trees with plain reads (skipping damaged subtrees),
// then, for the buckets that walk could not read in full, by scanning all
// leaf pages and carving records out of pages whose header is destroyed.
// Freed pages keep old versions of records, so the freshest version found
// wins, and a record that had been deleted can reappear.
//
// bbolt does not checksum data pages: damage inside a record's bytes that
// leaves the page structure intact is not detected here.
package salvage
