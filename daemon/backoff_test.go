package daemon

import (
	"testing"
	"time"
)

func TestBackoffDelay(t *testing.T) {
	for _, c := range []struct {
		poll   time.Duration
		failed int
		want   time.Duration
	}{
		{10 * time.Second, 0, 10 * time.Second},
		{10 * time.Second, 1, 20 * time.Second},
		{10 * time.Second, 3, 80 * time.Second},
		{10 * time.Second, 5, 5 * time.Minute}, // 320 s capped
		{10 * time.Second, 1000, 5 * time.Minute},
		{time.Hour, 4, time.Hour}, // a long interval is never shortened
		{time.Second, 2, 4 * time.Second},
	} {
		if got := backoffDelay(c.poll, c.failed); got != c.want {
			t.Errorf("backoffDelay(%v, %d) = %v, want %v", c.poll, c.failed, got, c.want)
		}
	}
	for i := 0; i < 1000; i++ {
		if d := jitter(time.Minute); d < 54*time.Second || d > 66*time.Second {
			t.Fatalf("jitter(1m) = %v, want within ±10%%", d)
		}
	}
}
