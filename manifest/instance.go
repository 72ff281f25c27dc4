package manifest

import (
	"errors"
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
	lim := m.Limits.withDefaults()
	data, err := ReadRepoFile(root, file, lim.InstanceFileBytes)
	switch {
	case errors.Is(err, ErrLimit):
		return Instance{}, nil, &ProblemsError{Problems: []Problem{{File: file, Message: strings.TrimPrefix(err.Error(), file+": "),
			Hint: "raise limits.instance_file_bytes in the host config, or shrink the file"}}}
	case errors.Is(err, ErrOutsideRepo) || errors.Is(err, ErrInvalid):
		return Instance{}, nil, &ProblemsError{Problems: []Problem{{File: file, Message: strings.TrimPrefix(err.Error(), file+": "),
			Hint: "instance files must be regular files that resolve inside the repository"}}}
	case err != nil:
		return Instance{}, nil, fmt.Errorf("read instance %s: %w", file, err)
	}
	doc, err := ParseDocumentLimits(data, lim)
	if err != nil {
		return Instance{}, nil, &ProblemsError{Problems: []Problem{syntaxProblem(file, err)}}
	}
	stem := strings.TrimSuffix(path.Base(file), path.Ext(file))
	inst := Instance{Name: InstanceName(stem), File: file}
	if a, _, ok := doc.elem.attr(m.Instances.Key); ok {
		line, col := doc.Position(a.start)
		if a.value == "" {
			return Instance{}, nil, &ProblemsError{Problems: []Problem{{File: file, Line: line, Col: col,
				Message: fmt.Sprintf("key attribute %q is empty", m.Instances.Key), Hint: "give the instance a name or remove the attribute to use the file name"}}}
		}
		if CheckInstanceName(a.value) != nil {
			return Instance{}, nil, &ProblemsError{Problems: []Problem{{File: file, Line: line, Col: col,
				Message: fmt.Sprintf("instance name %q (attribute %q) does not follow the grammar [A-Za-z0-9][A-Za-z0-9._-]{0,127}", a.value, m.Instances.Key),
				Hint:    InstanceNameRule}}}
		}
		inst.Name = InstanceName(a.value)
	} else if CheckInstanceName(stem) != nil {
		return Instance{}, nil, &ProblemsError{Problems: []Problem{{File: file,
			Message: fmt.Sprintf("instance name %q (the file name) does not follow the grammar [A-Za-z0-9][A-Za-z0-9._-]{0,127}", stem),
			Hint:    InstanceNameRule + "; rename the file or set the key attribute on the root element"}}}
	}
	return inst, doc, nil
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
