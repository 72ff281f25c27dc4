package schedule_test

import (
	"bytes"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sre-tools/deployer/manifest"
	"github.com/sre-tools/deployer/schedule"
)

// syncBuffer is a log sink the cron goroutines and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func stop(t *testing.T, s *schedule.Scheduler) {
	t.Helper()
	select {
	case <-s.Stop().Done():
	case <-time.After(10 * time.Second):
		t.Error("Stop: running fires did not return within 10s")
	}
}

// A panic in Fire is recovered, logged, and the schedule keeps firing.
func TestLivePanickingFireIsRecovered(t *testing.T) {
	logs := &syncBuffer{}
	st := mustOpenState(t)
	var calls atomic.Int32
	fired := make(chan schedule.Fire, 10)
	s := schedule.New(schedule.Options{
		Logger: zerolog.New(logs),
		State:  st,
		Fire: func(f schedule.Fire) {
			if calls.Add(1) == 1 {
				panic("enqueue failed")
			}
			fired <- f
		},
	})
	if err := s.Set("fra1", []manifest.Schedule{sched("tick", "@every 1s", "")}); err != nil {
		t.Fatal(err)
	}
	s.Start()
	defer stop(t, s)
	var f schedule.Fire
	select {
	case f = <-fired:
	case <-time.After(10 * time.Second):
		t.Fatalf("no fire after the panicking one within 10s; logs:\n%s", logs)
	}
	if f.Repo != "fra1" || f.Schedule.Name != "tick" || f.Missed || f.At.IsZero() || f.At.Nanosecond() != 0 {
		t.Errorf("fire: got %+v, want fra1/tick at a whole second", f)
	}
	if !strings.Contains(logs.String(), "enqueue failed") {
		t.Errorf("the panic was not logged:\n%s", logs)
	}
	stop(t, s)
	at, ok, err := st.LastFired("fra1", "tick")
	if err != nil || !ok || at.Before(f.At) {
		t.Errorf("LastFired: got %s %v %v, want at least %s", at, ok, err, f.At)
	}
}

// An activation due while Fire still runs is skipped, not run beside it.
func TestLiveNoConcurrentFire(t *testing.T) {
	logs := &syncBuffer{}
	release := make(chan struct{})
	var inFire, maxInFire, calls atomic.Int32
	s := schedule.New(schedule.Options{
		Logger: zerolog.New(logs).Level(zerolog.DebugLevel),
		Fire: func(schedule.Fire) {
			n := inFire.Add(1)
			defer inFire.Add(-1)
			if n > maxInFire.Load() {
				maxInFire.Store(n)
			}
			if calls.Add(1) == 1 {
				<-release
			}
		},
	})
	if err := s.Set("fra1", []manifest.Schedule{sched("tick", "@every 1s", "")}); err != nil {
		t.Fatal(err)
	}
	s.Start()
	defer stop(t, s)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), `"cron: skip"`) {
		if time.Now().After(deadline) {
			close(release)
			t.Fatalf("no skipped activation within 10s; logs:\n%s", logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(release)
	if got := maxInFire.Load(); got != 1 {
		t.Errorf("concurrent Fire calls: got %d, want 1", got)
	}
}

// Set on a running scheduler takes effect without a restart.
func TestLiveReload(t *testing.T) {
	fired := make(chan schedule.Fire, 10)
	s := schedule.New(schedule.Options{Fire: func(f schedule.Fire) {
		select {
		case fired <- f:
		default:
		}
	}})
	if err := s.Set("fra1", []manifest.Schedule{sched("tick", "@yearly", "")}); err != nil {
		t.Fatal(err)
	}
	s.Start()
	defer stop(t, s)
	fast := sched("tick", "@every 1s", "")
	fast.Steps = []manifest.StepName{"instance-configure"}
	if err := s.Set("fra1", []manifest.Schedule{fast}); err != nil {
		t.Fatal(err)
	}
	select {
	case f := <-fired:
		if len(f.Schedule.Steps) != 1 || f.Schedule.Steps[0] != "instance-configure" {
			t.Errorf("fire carries steps %v, want the reloaded [instance-configure]", f.Schedule.Steps)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("reloaded schedule did not fire within 10s")
	}
}
