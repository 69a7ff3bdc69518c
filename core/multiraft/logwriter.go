// The dedicated log's writer: log writes and their syncs on a goroutine
// of their own, so that the driver goes on while one is synced.

package multiraft

import (
	"context"
	"sync"
	"sync/atomic"
)

// logWriter writes, in order, the operations the driver detaches from a
// separate log (logStore.separate) each cycle, on a goroutine of its own.
// Writes queued while one is being written go out together with one
// sync, the last of them: group commit below the driver's own batching
// of a cycle. The driver never waits for a sync: it parks the Readies
// whose entries need it (see handleReady), goes on with other groups,
// and takes them up once done reports their write.
//
// The writer never waits for the driver (it posts its progress to an
// atomic and wakes the driver with a non-blocking send), so the driver
// may block on a full queue without a deadlock.
type logWriter struct {
	rlog  logStore
	reqC  chan logWrite
	wakeC chan struct{} // one pending wake-up at most
	done  atomic.Uint64 // every write up to this sequence number is done
	err   atomic.Pointer[error]
	wg    sync.WaitGroup
}

type logWrite struct {
	seq  uint64
	ops  *logOps
	sync bool
}

// maxCoalesced bounds the writes taken together, so that one sync is not
// put off indefinitely behind a stream of unsynced ones.
const maxCoalesced = 64

func newLogWriter(rlog logStore) *logWriter {
	w := &logWriter{rlog: rlog, reqC: make(chan logWrite, 256), wakeC: make(chan struct{}, 1)}
	w.wg.Add(1)
	go w.run()
	return w
}

// submit queues ops, to be synced if sync, as write number seq.
func (w *logWriter) submit(seq uint64, ops *logOps, sync bool) {
	w.reqC <- logWrite{seq: seq, ops: ops, sync: sync}
}

// stop writes what is queued and ends the writer.
func (w *logWriter) stop() {
	close(w.reqC)
	w.wg.Wait()
}

func (w *logWriter) run() {
	defer w.wg.Done()
	ctx := context.Background()
	batch := make([]logWrite, 0, maxCoalesced)
	for req := range w.reqC {
		batch = append(batch[:0], req)
	more:
		for len(batch) < maxCoalesced {
			select {
			case r, ok := <-w.reqC:
				if !ok {
					break more
				}
				batch = append(batch, r)
			default:
				break more
			}
		}
		if w.err.Load() != nil {
			continue // the log is stopped: drain the queue, write nothing
		}
		sync := false
		for _, r := range batch {
			sync = sync || r.sync
		}
		for i, r := range batch {
			if err := w.rlog.writeOps(ctx, r.ops, sync && i == len(batch)-1); err != nil {
				w.err.Store(&err)
				break
			}
		}
		if w.err.Load() == nil {
			w.done.Store(batch[len(batch)-1].seq)
		}
		select {
		case w.wakeC <- struct{}{}:
		default:
		}
	}
}

// writeLog writes the log's pending operations — synced if sync — and
// waits until they are written: through the writer, behind what it has
// queued, for a separate log.
func (n *Node) writeLog(ctx context.Context, sync bool) error {
	if n.writer == nil {
		_, err := n.rlog.write(ctx, nil, sync)
		return err
	}
	ops := n.rlog.detach()
	if ops == nil && !sync {
		return nil
	}
	n.logSeq++
	seq := n.logSeq
	n.writer.submit(seq, ops, sync)
	for n.writer.done.Load() < seq {
		if err := n.writer.err.Load(); err != nil {
			return *err
		}
		<-n.writer.wakeC // the run loop's handleReady checks the parked Readies anyway
	}
	return nil
}

// writing reports whether a log write submitted to the writer is not done.
func (n *Node) writing() bool {
	return n.writer != nil && n.writer.done.Load() < n.logSeq
}
