package executor

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// resolveCommand returns the absolute path of run: a relative run must stay
// inside repoRoot, an absolute one must lie under one of allowDirs, symlinks
// resolved in both cases.
func resolveCommand(repoRoot string, allowDirs []string, run string) (string, error) {
	if run == "" {
		return "", fmt.Errorf("resolve command: empty run")
	}
	if filepath.IsAbs(run) {
		return resolveAllowed(allowDirs, run)
	}
	root, err := filepath.EvalSymlinks(repoRoot)
	if err != nil {
		return "", fmt.Errorf("resolve repo root: %w", err)
	}
	path, err := filepath.EvalSymlinks(filepath.Join(root, filepath.FromSlash(run)))
	if err != nil {
		return "", fmt.Errorf("resolve command %s: %w", run, err)
	}
	if !within(root, path) {
		return "", fmt.Errorf("resolve command %s: %w", run, ErrCommandOutsideRepo)
	}
	return path, nil
}

func resolveAllowed(allowDirs []string, run string) (string, error) {
	path, err := filepath.EvalSymlinks(run)
	if err != nil {
		return "", fmt.Errorf("resolve command %s: %w", run, err)
	}
	for _, d := range allowDirs {
		dir, err := filepath.EvalSymlinks(d)
		if err == nil && within(dir, path) {
			return path, nil
		}
	}
	return "", fmt.Errorf("resolve command %s: %w", run, ErrCommandNotAllowed)
}

// within reports whether path lies strictly inside dir (both clean, absolute).
func within(dir, path string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}

var placeholder = regexp.MustCompile(`\{[a-z_]+\}`)

// expandArgs replaces {name} placeholders found in values; unknown
// placeholders stay as written.
func expandArgs(args []string, values map[string]string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if !strings.Contains(a, "{") {
			out[i] = a
			continue
		}
		out[i] = placeholder.ReplaceAllStringFunc(a, func(p string) string {
			if v, ok := values[p[1:len(p)-1]]; ok {
				return v
			}
			return p
		})
	}
	return out
}

// envSet is a process environment being assembled: what is passed, and what
// is recorded (everything except secret values).
type envSet struct {
	vars    map[string]string
	secrets map[string]bool
}

func newEnvSet() *envSet {
	return &envSet{vars: map[string]string{}, secrets: map[string]bool{}}
}

func (s *envSet) set(k, v string) {
	s.vars[k] = v
	delete(s.secrets, k)
}

func (s *envSet) setSecret(k, v string) {
	s.vars[k] = v
	s.secrets[k] = true
}

// hostAllowList copies the allow-listed host variables that are set.
func (s *envSet) hostAllowList(names []string) {
	for _, n := range names {
		if v, ok := os.LookupEnv(n); ok {
			s.set(n, v)
		}
	}
}

func (s *envSet) environ() []string {
	env := make([]string, 0, len(s.vars))
	for k, v := range s.vars {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	return env
}

// recorded returns the non-secret variables and the sorted secret names.
func (s *envSet) recorded(r *redactor) (map[string]string, []string) {
	rec := make(map[string]string, len(s.vars))
	var names []string
	for k, v := range s.vars {
		if s.secrets[k] {
			names = append(names, k)
			continue
		}
		rec[k] = r.string(v)
	}
	sort.Strings(names)
	return rec, names
}

// outputEnvName is the variable a later step receives output key as.
func outputEnvName(key string) string {
	return "DEPLOYER_OUT_" + strings.ToUpper(key)
}
