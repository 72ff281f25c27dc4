package executor_test

import (
	"context"
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/sre-tools/deployer/executor"
	"github.com/sre-tools/deployer/manifest"
)

// BenchmarkRunJobs runs 1000 instances x 2 steps (/bin/true), bucket 10, in a
// checkout holding the 1000 instance files, and reports per instance:
//   - wall-ms: elapsed time / instances
//   - step-ms: time inside step processes (Started..Ended, fork to reap), summed
//   - overhead-ms: (elapsed x bucket - step time) / instances: slot time not
//     spent inside a step process
//   - self-cpu-ms: CPU the executor's own process used (getrusage SELF)
//   - heap-KB before the first run, after the first and after the last
//     (each after GC), to show memory stays flat.
func BenchmarkRunJobs(b *testing.B) {
	const instances = 1000
	hook := func(context.Context, manifest.Step) ([]string, error) { return nil, nil }
	for _, bc := range []struct {
		name   string
		bucket int
		check  func(context.Context, manifest.Step) ([]string, error)
	}{
		{"default-writes-check/bucket-10", 10, nil},
		{"default-writes-check/bucket-1", 1, nil},
		{"writes-hook/bucket-10", 10, hook},
		{"writes-hook/bucket-1", 1, hook},
	} {
		bucket := time.Duration(bc.bucket)
		b.Run(bc.name, func(b *testing.B) {
			names := make([]string, instances)
			for i := range names {
				names[i] = fmt.Sprintf("i%04d", i)
			}
			root := newRepo(b, names...)
			jobs := make([]executor.Job, instances)
			for i, n := range names {
				configure := step("instance-configure", "/bin/true")
				redeploy := step("instance-redeploy", "/bin/true", "--instance", "{instance}")
				redeploy.After = []manifest.StepName{"instance-configure"}
				jobs[i] = job(root, n, configure, redeploy)
				jobs[i].AllowStepDirs = []string{"/bin", "/usr/bin"}
				jobs[i].CheckWrites = bc.check
			}
			e := executor.New(executor.Options{StepEnv: []string{"PATH"}})
			heapBefore := heapKB()
			var heapFirst float64
			var wall, stepTime, cpu time.Duration
			b.ResetTimer()
			for i := range b.N {
				cpu0 := selfCPU()
				start := time.Now()
				res := e.RunJobs(context.Background(), jobs, bc.bucket, 0, nil)
				wall += time.Since(start)
				cpu += selfCPU() - cpu0
				for _, ir := range res {
					if ir.Status != executor.StatusSucceeded {
						b.Fatalf("%s: %s %+v", ir.Instance.Name, ir.Status, ir.Steps)
					}
					for _, r := range ir.Steps {
						stepTime += r.Ended.Sub(r.Started)
					}
				}
				if i == 0 {
					b.StopTimer()
					heapFirst = heapKB()
					b.StartTimer()
				}
			}
			b.StopTimer()
			n := float64(b.N * instances)
			ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) / n }
			b.ReportMetric(ms(wall), "wall-ms/inst")
			b.ReportMetric(ms(stepTime), "step-ms/inst")
			b.ReportMetric(ms(wall*bucket-stepTime), "overhead-ms/inst")
			b.ReportMetric(ms(cpu), "self-cpu-ms/inst")
			b.ReportMetric(heapBefore, "heap-KB-before")
			b.ReportMetric(heapFirst, "heap-KB-after-1st")
			b.ReportMetric(heapKB(), "heap-KB-after-last")
		})
	}
}

func heapKB() float64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return float64(m.HeapAlloc) / 1024
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
