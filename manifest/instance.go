package manifest

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// Instance is one instance file.
type Instance struct {
	Name InstanceName
	File string // slash path relative to the repo root
}

// ReadInstance parses root/file (file is a slash path relative to root). The
// name is the value of the Key attribute on the root element when present,
// else the file stem. Problems come back as *ProblemsError.
func (m *Manifest) ReadInstance(root, file string) (Instance, error) {
	inst, _, err := m.readInstance(root, file)
	return inst, err
}

func (m *Manifest) readInstance(root, file string) (Instance, *Document, error) {
	msg := checkRepoPath(file)
	if msg == "" && path.Clean(file) != file {
		msg = fmt.Sprintf("%q is not a clean path", file)
	}
	if msg != "" {
		return Instance{}, nil, &ProblemsError{Problems: []Problem{{File: file, Message: "instance path " + msg, Hint: "instance files are slash paths inside the repository"}}}
	}
	if p := checkInside(root, file); p != "" {
		return Instance{}, nil, &ProblemsError{Problems: []Problem{{File: file, Message: p, Hint: "instance files must resolve inside the repository"}}}
	}
	data, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(file)))
	if err != nil {
		return Instance{}, nil, fmt.Errorf("read instance %s: %w", file, err)
	}
	doc, err := ParseDocument(data)
	if err != nil {
		return Instance{}, nil, &ProblemsError{Problems: []Problem{syntaxProblem(file, err)}}
	}
	stem := strings.TrimSuffix(path.Base(file), path.Ext(file))
	inst := Instance{Name: InstanceName(stem), File: file}
	if a, _, ok := doc.elem.attr(m.Instances.Key); ok {
		if a.value == "" {
			line, col := doc.Position(a.start)
			return Instance{}, nil, &ProblemsError{Problems: []Problem{{File: file, Line: line, Col: col,
				Message: fmt.Sprintf("key attribute %q is empty", m.Instances.Key), Hint: "give the instance a name or remove the attribute to use the file name"}}}
		}
		inst.Name = InstanceName(a.value)
	}
	return inst, doc, nil
}

// checkInside resolves symlinks of root/file and reports an escape ("" when fine).
func checkInside(root, file string) string {
	rroot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return ""
	}
	full, err := filepath.EvalSymlinks(filepath.Join(root, filepath.FromSlash(file)))
	if err != nil {
		return "" // reading reports it
	}
	if !within(rroot, full) {
		return fmt.Sprintf("instance file resolves to %s, outside the repository", full)
	}
	return ""
}

// ListInstances returns every instance file, sorted by File. Problems (bad
// files, duplicate names) are collected into a *ProblemsError returned with
// the instances that were fine.
func (m *Manifest) ListInstances(root string) ([]Instance, error) {
	dir := filepath.Join(root, filepath.FromSlash(m.Instances.Dir))
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list instances: %w", err)
	}
	var out []Instance
	var problems []Problem
	byName := map[InstanceName]string{}
	for _, e := range entries {
		file := path.Join(m.Instances.Dir, e.Name())
		if e.IsDir() || !m.MatchesInstancePath(file) {
			continue
		}
		inst, err := m.ReadInstance(root, file)
		if err != nil {
			problems = append(problems, asProblems(file, err)...)
			continue
		}
		if other, dup := byName[inst.Name]; dup {
			problems = append(problems, Problem{File: file, Message: fmt.Sprintf("instance name %q is also used by %s", inst.Name, other), Hint: "instance names must be unique"})
			continue
		}
		byName[inst.Name] = file
		out = append(out, inst)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].File < out[j].File })
	if len(problems) > 0 {
		return out, &ProblemsError{Problems: problems}
	}
	return out, nil
}

func asProblems(file string, err error) []Problem {
	if pe, ok := err.(*ProblemsError); ok {
		return pe.Problems
	}
	return []Problem{{File: file, Message: err.Error()}}
}

// ValidateDir validates root/deployer.xml and every instance file; nil when
// all is well.
func ValidateDir(root string, opts Options) []Problem {
	m, err := Load(root, opts)
	if err != nil {
		return asProblems(FileName, err)
	}
	_, err = m.ListInstances(root)
	if err != nil {
		return asProblems(m.Instances.Dir, err)
	}
	return nil
}
