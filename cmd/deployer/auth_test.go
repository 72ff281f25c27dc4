package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// authSource changes when an auth file is pointed elsewhere or rewritten in
// place, and never carries the file's contents.
func TestAuthSource(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "id")
	secret := "-----BEGIN OPENSSH PRIVATE KEY-----\nc2VjcmV0LWtleS1tYXRlcmlhbA==\n"
	if err := os.WriteFile(key, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	r := RepoConfig{Name: "cc"}
	r.Auth.SSHKeyFile = key
	r.Auth.Username = "git"
	a := authSource(r)
	if a != authSource(r) {
		t.Fatal("authSource is not stable for unchanged files")
	}
	if strings.Contains(a, "c2VjcmV0") || strings.Contains(a, "PRIVATE") {
		t.Fatalf("authSource carries the key: %s", a)
	}
	if err := os.WriteFile(key, []byte(secret+"x"), 0o600); err != nil {
		t.Fatal(err)
	}
	b := authSource(r)
	if a == b {
		t.Fatal("a key rewritten in place gives the same authSource")
	}
	other := filepath.Join(dir, "id2")
	if err := os.WriteFile(other, []byte(secret+"x"), 0o600); err != nil {
		t.Fatal(err)
	}
	r.Auth.SSHKeyFile = other
	if authSource(r) == b {
		t.Fatal("another key file with the same contents gives the same authSource")
	}
	r.Auth.Username = "deploy"
	c := authSource(r)
	r.Auth.Username = "git"
	if c == authSource(r) {
		t.Fatal("another user gives the same authSource")
	}
	os.Remove(other)
	if !strings.Contains(authSource(r), "unreadable") {
		t.Fatal("a missing file is not marked")
	}
}
