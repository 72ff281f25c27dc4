package syncer_test

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/sre-tools/deployer/syncer"
)

// cutProxy forwards TCP connections on 127.0.0.1 to target. With a limit set for a direction,
// it closes both sides of a connection once that many bytes went that way: a connection cut
// mid-pack. Limits count per connection; zero passes everything.
type cutProxy struct {
	l      net.Listener
	target string
	down   atomic.Int64 // server → client limit
	up     atomic.Int64 // client → server limit
	cuts   atomic.Int32
	// garble, when set, makes a limit flip every byte past it (and pass the stream on)
	// instead of cutting: a stream garbled in transit.
	garble atomic.Bool
	mu     sync.Mutex
	conns  []net.Conn
}

func startCutProxy(tb testing.TB, target string) *cutProxy {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &cutProxy{l: l, target: target}
	go p.serve()
	tb.Cleanup(p.close)
	return p
}

func (p *cutProxy) port() int { return p.l.Addr().(*net.TCPAddr).Port }

func (p *cutProxy) serve() {
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		cut := func() { c.Close(); s.Close() }
		go p.pipe(s, c, &p.up, cut)
		go p.pipe(c, s, &p.down, cut)
	}
}

// pipe copies src to dst; after *limit bytes (if above zero) it cuts the connection. The limit
// is read at each chunk, so it applies to a connection kept alive from before it was set (an
// HTTP client's pool), counting that connection's earlier bytes.
func (p *cutProxy) pipe(dst, src net.Conn, lim *atomic.Int64, cut func()) {
	defer cut()
	buf := make([]byte, 4096)
	var total int64
	for {
		n, err := src.Read(buf)
		limit := lim.Load()
		if n > 0 {
			if limit > 0 && total+int64(n) >= limit && p.garble.Load() {
				for k := max(0, limit-total); k < int64(n); k++ {
					buf[k] ^= 0x5a
				}
				if total < limit {
					p.cuts.Add(1)
				}
				total += int64(n)
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
				continue
			}
			if limit > 0 && total+int64(n) >= limit {
				_, _ = dst.Write(buf[:max(0, limit-total)])
				p.cuts.Add(1)
				return
			}
			total += int64(n)
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *cutProxy) close() {
	p.l.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
}

// randomText is n bytes that zlib cannot shrink much, so a pack carrying it is large.
func randomText(tb testing.TB, n int) string {
	tb.Helper()
	b := make([]byte, n*3/4)
	if _, err := io.ReadFull(rand.Reader, b); err != nil {
		tb.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// cutFixture serves the fixture's bare repository with git daemon behind a cutProxy.
func cutFixture(t *testing.T) (*fixture, *cutProxy) {
	f := newFixture(t)
	d := startGitDaemon(t, filepath.Dir(f.bare), 0)
	p := startCutProxy(t, fmt.Sprintf("127.0.0.1:%d", d.port))
	f.remote = fmt.Sprintf("git://127.0.0.1:%d/%s", p.port(), filepath.Base(f.bare))
	return f, p
}

func wantUnreachable(t *testing.T, op string, err error) {
	t.Helper()
	if syncer.KindOf(err) != syncer.KindUnreachable {
		t.Fatalf("%s cut mid-pack: got %v (kind %q), want remote-unreachable", op, err, syncer.KindOf(err))
	}
	t.Logf("%s cut mid-pack: %v", op, err)
}

func TestFetchCutMidPackIsUnreachableAndRecovers(t *testing.T) {
	t.Parallel()
	f, p := cutFixture(t)
	r := f.open(f.options())
	known := f.tip()
	f.push("instances/big.xml", "<instance name=\"big\" blob=\""+randomText(t, 2<<20)+"\"/>\n", "big")
	p.down.Store(64 << 10)
	res, err := r.Sync(ctxT(t), known)
	wantUnreachable(t, "fetch", err)
	if p.cuts.Load() == 0 {
		t.Fatalf("the proxy never cut a connection: the test tested nothing")
	}
	if res.State != syncer.StateUnreachable || r.Head() != known {
		t.Fatalf("after the cut: %+v, HEAD %s; want unreachable at %s", res, r.Head(), known)
	}
	checkHealthy(t, f.dir, known)

	p.down.Store(0)
	res, err = r.Sync(ctxT(t), known)
	if err != nil || res.State != syncer.StateBehind || res.Head != f.tip() {
		t.Fatalf("sync once the link is back: %+v, %v", res, err)
	}
	checkHealthy(t, f.dir, f.tip())
	if res, err := r.Sync(ctxT(t), f.tip()); err != nil || res.State != syncer.StateClean {
		t.Fatalf("sync after recovery: %+v, %v", res, err)
	}
}

func TestCloneCutMidPackIsUnreachableAndLeavesNoHalfCheckout(t *testing.T) {
	t.Parallel()
	f, p := cutFixture(t)
	f.push("instances/big.xml", "<instance name=\"big\" blob=\""+randomText(t, 2<<20)+"\"/>\n", "big")
	p.down.Store(64 << 10)
	_, err := syncer.Open(ctxT(t), f.options())
	wantUnreachable(t, "clone", err)
	if p.cuts.Load() == 0 {
		t.Fatalf("the proxy never cut a connection: the test tested nothing")
	}
	if _, err := os.Stat(filepath.Join(f.dir, ".git")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a failed clone left %s/.git behind (%v)", f.dir, err)
	}
	p.down.Store(0)
	r := f.open(f.options())
	checkHealthy(t, f.dir, f.tip())
	if r.Head() != f.tip() {
		t.Fatalf("HEAD: got %s, want %s", r.Head(), f.tip())
	}
}

func TestPushCutMidPackIsUnreachableAndSyncPushesLater(t *testing.T) {
	t.Parallel()
	f, p := cutFixture(t)
	r := f.open(f.options())
	known := f.tip()
	big := "<instance name=\"big\" blob=\"" + randomText(t, 2<<20) + "\"/>\n"
	ch := syncer.Change{ID: "c1", Path: "instances/big.xml", Message: "instance-configure: big: add",
		Apply: func([]byte) ([]byte, error) { return []byte(big), nil }}
	p.up.Store(64 << 10)
	out, err := r.WriteBack(ctxT(t), []syncer.Change{ch}, 3)
	wantUnreachable(t, "push", err)
	if p.cuts.Load() == 0 {
		t.Fatalf("the proxy never cut a connection: the test tested nothing")
	}
	wantStatuses(t, out, syncer.OutcomePending)
	if f.tip() != known {
		t.Fatalf("remote moved to %s after a cut push", f.tip())
	}
	local := r.Head()
	if local == known || out[0].Commit != local {
		t.Fatalf("after the cut: HEAD %s, outcome %+v; want our commit kept locally", local, out[0])
	}
	checkHealthy(t, f.dir, local)
	gitRun(t, f.bare, "fsck", "--no-progress", "--strict")

	p.up.Store(0)
	res, err := r.Sync(ctxT(t), known)
	if err != nil || res.State != syncer.StateAheadOurs || f.tip() != local {
		t.Fatalf("sync once the link is back: %+v, %v; remote at %s, want %s", res, err, f.tip(), local)
	}
	if got := gitRun(t, f.bare, "show", "main:instances/big.xml"); got+"\n" != big {
		t.Fatalf("big.xml on the remote differs (%d bytes, want %d)", len(got)+1, len(big))
	}
	gitRun(t, f.bare, "fsck", "--no-progress", "--strict")
	checkHealthy(t, f.dir, local)
	if res, err := r.Sync(ctxT(t), local); err != nil || res.State != syncer.StateClean {
		t.Fatalf("sync after recovery: %+v, %v", res, err)
	}
}
