package main

import (
	"strings"
	"testing"
)

// TestListenStatus: listen.status takes token or public (default token);
// anything else names the file and line.
func TestListenStatus(t *testing.T) {
	const head = "state_dir: /x\nlisten:\n  http: 127.0.0.1:8080\n  token_file: /t\n"
	const repos = "repos:\n  - name: a\n    url: git://h/a\n"
	for _, v := range []string{"", "token", "public"} {
		y := head
		if v != "" {
			y += "  status: " + v + "\n"
		}
		c, err := parseConfig("deployer.yaml", []byte(y+repos))
		if err != nil {
			t.Fatalf("status %q: %v", v, err)
		}
		if c.Listen.Status != v {
			t.Errorf("status %q: parsed %q", v, c.Listen.Status)
		}
	}
	_, err := parseConfig("deployer.yaml", []byte(head+"  status: open\n"+repos))
	if err == nil || !strings.Contains(err.Error(), `deployer.yaml:5: listen.status "open": want token`) {
		t.Fatalf("got %v, want deployer.yaml:5: listen.status \"open\": want token ...", err)
	}
}
