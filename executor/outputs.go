package executor

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"syscall"
)

// maxOutputFile bounds the DEPLOYER_OUTPUT file a step may write.
const maxOutputFile = 1 << 20

var outputKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// readOutputs parses the key=value lines of the DEPLOYER_OUTPUT file at path.
// Empty lines and lines starting with # are ignored; a later key wins.
func readOutputs(path string) (map[string]string, error) {
	// The step may have replaced the file: a FIFO blocked the open (and the
	// run, past its timeout and the daemon's stop) until someone wrote to
	// it; a symlink could point anywhere. Only a regular file is read, and
	// the open neither follows a link nor waits.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, fmt.Errorf("read DEPLOYER_OUTPUT: the step replaced it with a symlink; write key=value lines to the file itself")
		}
		return nil, fmt.Errorf("read DEPLOYER_OUTPUT: %w", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return nil, fmt.Errorf("read DEPLOYER_OUTPUT: %w", err)
	} else if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("read DEPLOYER_OUTPUT: the step replaced it with a %s; write key=value lines to the file itself", fileKind(fi.Mode()))
	}
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

// fileKind names what a non-regular file is.
func fileKind(m os.FileMode) string {
	switch {
	case m&os.ModeNamedPipe != 0:
		return "named pipe"
	case m&os.ModeDevice != 0:
		return "device"
	case m&os.ModeSocket != 0:
		return "socket"
	case m.IsDir():
		return "directory"
	}
	return "special file"
}
