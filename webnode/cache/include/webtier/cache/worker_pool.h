// A fixed set of threads running queued tasks: where origin fetches, demo-app
// CPU work and lock waits run, never on an HTTP server I/O thread.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace webtier::cache {

// Thread-safe. Tasks run in FIFO order on `threads` threads; at most
// `max_queued` wait (beyond that Submit refuses, so overload turns into fast
// 503s instead of unbounded memory and latency). The destructor stops taking
// tasks, runs the ones already queued, and joins the threads. A task that
// throws is logged and dropped.
class WorkerPool {
 public:
  WorkerPool(std::string name, size_t threads, size_t max_queued = 4096);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // False (and `task` is destroyed unrun) when the queue is full or stopping.
  [[nodiscard]] bool Submit(std::function<void()> task);
  size_t queued() const;

 private:
  void Run();

  const std::string name_;
  const size_t max_queued_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;  // guarded by mu_
  bool stopping_ = false;                    // guarded by mu_
  std::vector<std::thread> threads_;
};

}  // namespace webtier::cache
