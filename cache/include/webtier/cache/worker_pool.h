// A fixed set of threads running queued tasks: where origin fetches, demo-app
// CPU work and lock waits run, never on an HTTP server I/O thread.
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "webtier/common/mutex.h"
#include "webtier/common/thread_annotations.h"

namespace webtier::cache {

// Thread-safe. Tasks run in FIFO order on `threads` threads; at most
// `max_queued` wait (beyond that Submit refuses, so overload turns into fast
// 503s instead of unbounded memory and latency). The destructor stops taking
// tasks, runs the ones already queued, and joins the threads. A task that
// throws is logged and dropped.
//
// A task goes to the thread that went idle last. With many threads and
// light load the same few do the work, their caches (CPU, allocator) warm,
// instead of each task waking the thread that slept longest; the others
// stay for the bursts of slow, blocking tasks they exist for.
class WorkerPool {
 public:
  WorkerPool(std::string name, size_t threads, size_t max_queued = 4096);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // False (and `task` is destroyed unrun) when the queue is full or stopping.
  [[nodiscard]] bool Submit(std::function<void()> task) WEBTIER_EXCLUDES(mu_);
  // Hands `task` to a thread that is idle now, as Submit does; false, with
  // `task` left as it was, when none is (or stopping): never queues it.
  [[nodiscard]] bool SubmitIfIdle(std::function<void()>& task) WEBTIER_EXCLUDES(mu_);
  size_t queued() const WEBTIER_EXCLUDES(mu_);
  size_t idle() const WEBTIER_EXCLUDES(mu_);  // threads waiting for a task

 private:
  // A thread's slot, where it waits for a task of its own. The pool owns the
  // slots and frees them after joining the threads, so a task's signal, sent
  // after the lock is let go, never reaches a thread that has already gone.
  struct Idle {
    CondVar cv;
    std::function<void()> task;
    bool handed = false;
  };

  void Run(Idle* self) WEBTIER_EXCLUDES(mu_);

  const std::string name_;
  const size_t max_queued_;
  mutable Mutex mu_;
  std::deque<std::function<void()>> tasks_ WEBTIER_GUARDED_BY(mu_);  // only while no thread is idle
  std::vector<Idle*> idle_ WEBTIER_GUARDED_BY(mu_);                  // the last one went idle last
  bool stopping_ WEBTIER_GUARDED_BY(mu_) = false;
  std::vector<std::unique_ptr<Idle>> slots_;  // one per thread, fixed at construction
  std::vector<std::thread> threads_;
};

}  // namespace webtier::cache
