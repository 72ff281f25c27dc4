package fleet

import (
	"context"
	"sync"
)

// jobQueue runs jobs on a fixed number of goroutines in the order they were
// added. add never blocks, so a deployment's callbacks never wait for the
// tracker. Once ctx is done the jobs still queued are dropped, not run.
type jobQueue struct {
	ctx context.Context

	mu      sync.Mutex
	cond    *sync.Cond
	jobs    []func(context.Context)
	closed  bool
	skipped int
	wg      sync.WaitGroup
}

func newJobQueue(ctx context.Context, workers int) *jobQueue {
	q := &jobQueue{ctx: ctx}
	q.cond = sync.NewCond(&q.mu)
	for range workers {
		q.wg.Go(q.work)
	}
	return q
}

func (q *jobQueue) add(job func(context.Context)) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		q.skipped++
		return
	}
	q.jobs = append(q.jobs, job)
	q.cond.Signal()
}

func (q *jobQueue) work() {
	for {
		q.mu.Lock()
		for len(q.jobs) == 0 && !q.closed {
			q.cond.Wait()
		}
		if len(q.jobs) == 0 {
			q.mu.Unlock()
			return
		}
		job := q.jobs[0]
		q.jobs = q.jobs[1:]
		if q.ctx.Err() != nil {
			q.skipped++
			q.mu.Unlock()
			continue
		}
		q.mu.Unlock()
		job(q.ctx)
	}
}

// close lets the workers end once the queue is empty.
func (q *jobQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.cond.Broadcast()
	q.mu.Unlock()
}

func (q *jobQueue) wait() { q.wg.Wait() }

// dropped is how many jobs were not run.
func (q *jobQueue) dropped() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.skipped
}
