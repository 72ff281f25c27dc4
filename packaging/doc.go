// Package packaging builds the deployer .deb: nfpm.yaml (nfpm's config),
// scripts/ (the maintainer scripts: the deployer user and group, the
// deployer-ops group, systemd) and build-deb, which builds the binary, its
// man pages and completions and runs nfpm at a pinned version. It has no
// Go code; its test builds the package and checks what is in it.
package packaging
