package manifest_test

import (
	"testing"

	"github.com/sre-tools/deployer/manifest"
)

// BenchmarkCorpusPass is one full corpus pass: parse, one edit, write,
// re-parse, for every file. Target: under 2 s per op on 2 cores.
func BenchmarkCorpusPass(b *testing.B) {
	files := corpusFiles(b)
	type job struct {
		data []byte
		edit manifest.Edit
	}
	var jobs []job
	for _, name := range sortedNames(files) {
		data := files[name]
		doc, err := manifest.ParseDocument(data)
		if err != nil {
			b.Fatal(err)
		}
		g, err := goTree(data)
		if err != nil {
			b.Fatal(err)
		}
		e, _ := corpusEdit(doc, g)
		jobs = append(jobs, job{data, e})
	}
	b.ResetTimer()
	for b.Loop() {
		for _, j := range jobs {
			out, err := manifest.Apply(j.data, []manifest.Edit{j.edit})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := manifest.ParseDocument(out); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkEditLargest is one attribute edit on the largest corpus file
// (parse, find, splice). Target: under 5 ms.
func BenchmarkEditLargest(b *testing.B) {
	files := corpusFiles(b)
	var largest []byte
	for _, data := range files {
		if len(data) > len(largest) {
			largest = data
		}
	}
	doc, err := manifest.ParseDocument(largest)
	if err != nil {
		b.Fatal(err)
	}
	elems := manifest.Elements(doc, manifest.DiffOptions{})
	e := elems[len(elems)/2]
	edit := manifest.Edit{Op: manifest.OpSetAttr, Path: e.Path, Attr: "bench", Value: "1"}
	b.SetBytes(int64(len(largest)))
	b.ResetTimer()
	for b.Loop() {
		if _, err := manifest.Apply(largest, []manifest.Edit{edit}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDiffLargest diffs the largest corpus file against itself with one
// attribute changed.
func BenchmarkDiffLargest(b *testing.B) {
	files := corpusFiles(b)
	var largest []byte
	for _, data := range files {
		if len(data) > len(largest) {
			largest = data
		}
	}
	doc, _ := manifest.ParseDocument(largest)
	elems := manifest.Elements(doc, manifest.DiffOptions{})
	changed, err := manifest.Apply(largest, []manifest.Edit{{Op: manifest.OpSetAttr, Path: elems[len(elems)/2].Path, Attr: "bench", Value: "1"}})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if es, err := manifest.Diff(largest, changed, manifest.DiffOptions{}); err != nil || len(es) != 1 {
			b.Fatal(es, err)
		}
	}
}
