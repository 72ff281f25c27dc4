package daemon

import (
	"bufio"
	"fmt"
	"os"
	"strings"
)

// readEnvFiles reads the repo's env_files: KEY=VALUE lines ('#' comments
// and blank lines allowed). The values reach the steps as secrets: their
// names are recorded, never their values. They are read at each run, so a
// rotated secret needs no restart.
func readEnvFiles(paths []string) (map[string]string, error) {
	if len(paths) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return nil, fmt.Errorf("env file: %w", err)
		}
		sc := bufio.NewScanner(f)
		for n := 1; sc.Scan(); n++ {
			line := strings.TrimSpace(sc.Text())
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			k, v, ok := strings.Cut(line, "=")
			k = strings.TrimSpace(strings.TrimPrefix(k, "export "))
			if !ok || k == "" || strings.ContainsAny(k, " \t") {
				f.Close()
				return nil, fmt.Errorf("%s:%d: want KEY=VALUE (the value is not shown)", p, n)
			}
			out[k] = strings.Trim(strings.TrimSpace(v), `"'`)
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("env file %s: %w", p, err)
		}
	}
	return out, nil
}
