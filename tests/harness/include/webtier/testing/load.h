// A steady HTTP load for tests under faults: HTTP/1.1 GETs from several
// threads (keep-alive or a fresh connection per request; at a fixed total
// rate or as fast as answers come), counting every non-2xx answer and every
// connection error (refused, reset, timeout, malformed). Nothing is retried:
// one failed attempt is one failure.
// Threading: Start/Stop/Reset from one thread; Snapshot and last_failure from any.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace webtier::testing {

struct LoadStats {
  uint64_t requests = 0;   // attempts finished (ok + failed)
  uint64_t ok = 0;         // 2xx
  uint64_t failed = 0;     // non-2xx + connection errors
  std::map<int, uint64_t> by_status;            // every status seen
  std::map<std::string, uint64_t> errors;       // connection error kind -> count
  std::map<std::string, uint64_t> served_by;    // X-Served-By of 2xx answers
  std::map<std::string, uint64_t> x_cache;      // X-Cache of 2xx answers
  double p50_ms = 0, p99_ms = 0, max_ms = 0;    // latency of 2xx answers
  std::vector<std::string> failure_samples;      // the first few failures: status or error, start of the body
  std::string Describe() const;                  // counts and samples, for failure messages
  // Counts accumulated since `earlier` (a snapshot of the same run); the
  // latency fields and samples stay those of the whole run.
  LoadStats Since(const LoadStats& earlier) const;
};

class LoadGenerator {
 public:
  struct Options {
    std::string host = "127.0.0.1";
    uint16_t port = 0;
    std::vector<std::string> paths = {"/"};  // cycled through
    int threads = 4;
    int rate_per_sec = 400;                  // total across threads; 0: each thread sends as soon as answered
    std::chrono::milliseconds timeout{5000}; // per request
    bool keep_alive = true;                  // false: "Connection: close", a new connection per request
  };
  explicit LoadGenerator(Options options);
  ~LoadGenerator();  // stops
  LoadGenerator(const LoadGenerator&) = delete;
  LoadGenerator& operator=(const LoadGenerator&) = delete;

  void Start();
  void Stop();
  // Counters since Start (or the last Reset).
  LoadStats Snapshot() const;
  void Reset();
  // Wall-clock time of the most recent failure, or nullopt-like epoch when none.
  std::chrono::steady_clock::time_point last_failure() const;

 private:
  void Worker(int index);
  void Record(int status, const std::string& served_by, const std::string& x_cache, double ms,
              const std::string& error, const std::string& body);

  Options options_;
  std::atomic<bool> running_{false};
  std::vector<std::thread> threads_;
  mutable std::mutex mu_;
  LoadStats stats_;
  std::vector<double> latencies_;
  std::chrono::steady_clock::time_point last_failure_{};
};

}  // namespace webtier::testing
