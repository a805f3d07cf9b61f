// WorkerPool: order, bounds, shutdown, and which thread takes a task.
#include "webtier/cache/worker_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include "webtier/testing/harness.h"

namespace webtier::cache {
namespace {

using namespace std::chrono_literals;
using webtier::testing::WaitFor;

// One thread: tasks run in the order they came; past `max_queued` waiting
// ones Submit refuses; the destructor runs what was queued before it.
TEST(WorkerPoolTest, TasksRunInOrderWithinTheQueueBound) {
  std::vector<int> order;
  std::mutex mu;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  {
    WorkerPool pool("order", 1, 3);
    ASSERT_TRUE(pool.Submit([released] { released.wait(); }));
    ASSERT_TRUE(WaitFor([&] { return pool.queued() == 0 && pool.idle() == 0; }, 5s));  // the thread holds it
    for (int i = 0; i < 3; ++i) {
      ASSERT_TRUE(pool.Submit([&, i] {
        std::lock_guard<std::mutex> lock(mu);
        order.push_back(i);
      }));
    }
    EXPECT_EQ(pool.queued(), 3u);
    EXPECT_FALSE(pool.Submit([] {}));  // full
    release.set_value();
  }  // the destructor runs the queued ones
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2}));
}

// A task that throws is dropped; its thread goes on.
TEST(WorkerPoolTest, AThrowingTaskLeavesItsThreadServing) {
  WorkerPool pool("throws", 1);
  ASSERT_TRUE(pool.Submit([] { throw std::runtime_error("boom"); }));
  auto done = std::make_shared<std::promise<void>>();
  ASSERT_TRUE(pool.Submit([done] { done->set_value(); }));
  EXPECT_EQ(done->get_future().wait_for(5s), std::future_status::ready);
}

// Light load, one task at a time: the thread that went idle last takes
// each one, so one thread does all of them (its caches warm) instead of
// the eight taking turns.
TEST(WorkerPoolTest, TheThreadThatWentIdleLastTakesTheNextTask) {
  WorkerPool pool("lifo", 8);
  ASSERT_TRUE(WaitFor([&] { return pool.idle() == 8; }, 5s));
  std::set<std::thread::id> ran;
  for (int i = 0; i < 50; ++i) {
    auto done = std::make_shared<std::promise<std::thread::id>>();
    ASSERT_TRUE(pool.Submit([done] { done->set_value(std::this_thread::get_id()); }));
    ran.insert(done->get_future().get());
    ASSERT_TRUE(WaitFor([&] { return pool.idle() == 8; }, 5s));
  }
  EXPECT_EQ(ran.size(), 1u);
}

// Many blocking tasks at once still get every thread.
TEST(WorkerPoolTest, EveryThreadServesABurstOfBlockingTasks) {
  WorkerPool pool("burst", 8);
  std::atomic<int> running{0};
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  for (int i = 0; i < 12; ++i) {
    ASSERT_TRUE(pool.Submit([&running, released] {
      ++running;
      released.wait();
    }));
  }
  ASSERT_TRUE(WaitFor([&] { return running.load() == 8; }, 5s));
  EXPECT_EQ(pool.queued(), 4u);
  EXPECT_EQ(pool.idle(), 0u);
  release.set_value();
  ASSERT_TRUE(WaitFor([&] { return running.load() == 12 && pool.idle() == 8; }, 5s));
}

// SubmitIfIdle hands a task only to a thread that is idle now; with none,
// it refuses and leaves the task with the caller, and nothing is queued.
TEST(WorkerPoolTest, SubmitIfIdleNeverQueues) {
  WorkerPool pool("if-idle", 1);
  ASSERT_TRUE(WaitFor([&] { return pool.idle() == 1; }, 5s));
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::function<void()> hold = [released] { released.wait(); };
  ASSERT_TRUE(pool.SubmitIfIdle(hold));
  ASSERT_TRUE(WaitFor([&] { return pool.idle() == 0; }, 5s));
  auto ran = std::make_shared<std::promise<void>>();
  std::function<void()> task = [ran] { ran->set_value(); };
  EXPECT_FALSE(pool.SubmitIfIdle(task));
  EXPECT_EQ(pool.queued(), 0u);
  ASSERT_TRUE(task);  // still the caller's
  release.set_value();
  ASSERT_TRUE(WaitFor([&] { return pool.idle() == 1; }, 5s));
  ASSERT_TRUE(pool.SubmitIfIdle(task));
  EXPECT_EQ(ran->get_future().wait_for(5s), std::future_status::ready);
}

}  // namespace
}  // namespace webtier::cache
