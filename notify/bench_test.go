package notify_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/sre-tools/deployer/notify"
)

// BenchmarkDrainWebhook measures delivering signed webhook messages to a
// local server, one Drain pass of 100 messages per iteration.
func BenchmarkDrainWebhook(b *testing.B) {
	srv := newRecorder(b, nil)
	clk := &clock{t: t0}
	out := &memOutbox{now: clk.Now}
	d := newDispatcher(b, out, clk, zerolog.Nop(), notify.ChannelConfig{Kind: notify.KindWebhook, URL: srv.URL, Secret: "s"})
	n := 0
	for b.Loop() {
		for range 100 {
			n++
			out.add(notify.Message{DeliveryID: fmt.Sprint("b-", n), Channel: "webhook", Event: sampleEvent(notify.EventNew)})
		}
		if r := drain(b, d); r.Sent != 100 {
			b.Fatalf("sent %d, want 100", r.Sent)
		}
	}
	b.ReportMetric(float64(b.Elapsed())/float64(n)/float64(time.Microsecond), "µs/message")
}

func BenchmarkDecide(b *testing.B) {
	chans := channels()
	st := notify.State{FirstSeen: t0, Notified: t0}
	for b.Loop() {
		notify.Decide(st, chans, t0.Add(5*time.Hour))
	}
}
