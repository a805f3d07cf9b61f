// The worker pool behind every origin fetch.
#include "webtier/cache/worker_pool.h"

#include <algorithm>
#include <exception>

#include "webtier/common/log.h"

namespace webtier::cache {

WorkerPool::WorkerPool(std::string name, size_t threads, size_t max_queued)
    : name_(std::move(name)), max_queued_(max_queued) {
  if (threads == 0) threads = 1;
  slots_.reserve(threads);
  threads_.reserve(threads);
  for (size_t i = 0; i < threads; ++i) {
    Idle* slot = slots_.emplace_back(std::make_unique<Idle>()).get();
    threads_.emplace_back([this, slot] { Run(slot); });
  }
}

WorkerPool::~WorkerPool() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
    for (Idle* idle : idle_) idle->cv.Signal();
  }
  for (auto& t : threads_) t.join();
}

bool WorkerPool::Submit(std::function<void()> task) {
  Idle* idle = nullptr;
  {
    MutexLock lock(&mu_);
    if (stopping_) return false;
    if (idle_.empty()) {
      if (tasks_.size() >= max_queued_) return false;
      tasks_.push_back(std::move(task));
      return true;
    }
    idle = idle_.back();
    idle_.pop_back();
    idle->task = std::move(task);
    idle->handed = true;
  }
  // After the lock is let go: signalled under it, the woken thread would
  // block at once on the mutex this thread still holds, and be woken a
  // second time (a context switch more per task). The slot outlives the
  // thread (see Idle), and a signal that arrives late only wakes a waiter
  // that finds nothing handed and waits again.
  idle->cv.Signal();
  return true;
}

bool WorkerPool::SubmitIfIdle(std::function<void()>& task) {
  Idle* idle = nullptr;
  {
    MutexLock lock(&mu_);
    if (stopping_ || idle_.empty()) return false;
    idle = idle_.back();
    idle_.pop_back();
    idle->task = std::move(task);
    idle->handed = true;
  }
  idle->cv.Signal();  // after the unlock, as in Submit
  return true;
}

size_t WorkerPool::queued() const {
  MutexLock lock(&mu_);
  return tasks_.size();
}

size_t WorkerPool::idle() const {
  MutexLock lock(&mu_);
  return idle_.size();
}

void WorkerPool::Run(Idle* slot) {
  Idle& self = *slot;
  for (;;) {
    std::function<void()> task;
    {
      MutexLock lock(&mu_);
      if (!tasks_.empty()) {
        task = std::move(tasks_.front());
        tasks_.pop_front();
      } else if (stopping_) {
        return;  // stopping and drained
      } else {
        idle_.push_back(&self);
        while (!self.handed && !stopping_) self.cv.Wait(&mu_);
        if (!self.handed) {  // stopping: no task will come this way
          idle_.erase(std::find(idle_.begin(), idle_.end(), &self));
          continue;
        }
        self.handed = false;
        task = std::move(self.task);
        self.task = nullptr;
      }
    }
    try {
      task();
    } catch (const std::exception& e) {
      log::Error("cache", "worker task threw").kv("pool", name_).kv("err", e.what());
    } catch (...) {
      log::Error("cache", "worker task threw").kv("pool", name_);
    }
  }
}

}  // namespace webtier::cache
