package executor

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"regexp"
)

// maxOutputFile bounds the DEPLOYER_OUTPUT file a step may write.
const maxOutputFile = 1 << 20

var outputKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// readOutputs parses the key=value lines of the DEPLOYER_OUTPUT file at path.
// Empty lines and lines starting with # are ignored; a later key wins.
func readOutputs(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read DEPLOYER_OUTPUT: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxOutputFile+1))
	if err != nil {
		return nil, fmt.Errorf("read DEPLOYER_OUTPUT: %w", err)
	}
	if len(data) > maxOutputFile {
		return nil, fmt.Errorf("read DEPLOYER_OUTPUT: larger than %d bytes", maxOutputFile)
	}
	return parseOutputs(data)
}

func parseOutputs(data []byte) (map[string]string, error) {
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, maxOutputFile+1)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSuffix(sc.Bytes(), []byte("\r"))
		if len(bytes.TrimSpace(line)) == 0 || line[0] == '#' {
			continue
		}
		k, v, ok := bytes.Cut(line, []byte("="))
		switch {
		case !ok:
			return nil, fmt.Errorf("%w %d: missing '=' (want key=value)", ErrBadOutput, n)
		case !outputKey.Match(k):
			return nil, fmt.Errorf("%w %d: key %q is not a name ([A-Za-z_][A-Za-z0-9_]*)", ErrBadOutput, n, k)
		}
		out[string(k)] = string(v)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read DEPLOYER_OUTPUT: %w", err)
	}
	return out, nil
}
