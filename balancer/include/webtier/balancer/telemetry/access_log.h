// The access log: one line per request the balancer served or refused, as
// JSON (one object per line) or logfmt text, written by a thread of its own.
//
// Workers never wait for the disk or a reader: each formats its line and
// appends it to its own shard (a buffer behind a mutex only the writer
// thread ever contends for, while it swaps the buffer out); the writer
// thread takes every shard's lines at least every 100 ms and writes them.
// A shard's two buffers keep their capacity (up to 1 MiB each): a steady
// flow of lines allocates nothing.
// When a shard already holds its bound (the writer is stalled: a full pipe,
// a stopped reader, a slow disk) the line is dropped and counted, never
// waited for. SIGUSR1 (Reopen()) makes the writer open the path again, after
// a rename by logrotate; no line is lost across it. `-` is stdout.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "webtier/common/mutex.h"
#include "webtier/common/status.h"

namespace webtier::balancer {

class ProxyMetrics;

// Why the balancer answered, retried or gave up, as the `flags` of a line;
// a member's own answer, relayed on the first try, has none.
enum AccessFlag : uint32_t {
  kNoMember = 1u << 0,          // no_member: the pool is empty (503)
  kNoHealthyMember = 1u << 1,   // no_healthy_member: every member ejected, unhealthy or tried
  kConnectFailed = 1u << 2,     // connect_failed: a connect to a member failed (retried or not)
  kMemberReset = 1u << 3,       // member_reset: a member closed or reset the connection
  kMemberTimeout = 1u << 4,     // member_timeout: a member did not answer in time
  kMemberUnhealthy = 1u << 5,   // member_unhealthy: its checks failed while it was awaited
  kMember5xx = 1u << 6,         // member_5xx: a member's gateway error, retried elsewhere
  kResponseRefused = 1u << 7,   // response_refused: a member's framing cannot be relayed (502)
  kBadRequest = 1u << 8,        // bad_request: the request could not be parsed
  kFramingRefused = 1u << 9,    // framing_refused: ambiguous framing (smuggling) or an unknown coding
  kLimit = 1u << 10,            // limit: a size, count or time limit on the request
  kAdminPath = 1u << 11,        // admin_path: /admin/... on the public listener
  kMisdirected = 1u << 12,      // misdirected: a Host not in --host (421)
  kClientGone = 1u << 13,       // client_gone: the client left before its answer
  kUpgraded = 1u << 14,         // upgraded: the connection became a tunnel (101)
  kDraining = 1u << 15,         // draining: the balancer was shutting down
  kEdgeHit = 1u << 16,          // edge_hit: answered from the edge cache, no member asked
};

// The names of `flags`, comma-separated ("" for none): a span's attribute.
std::string AccessFlagsText(uint32_t flags);

// One request as it is logged. Views must stay valid until Log() returns.
struct AccessRecord {
  std::chrono::system_clock::time_point time;  // its first byte read
  std::string_view client;                     // client address
  std::string_view protocol;                   // "HTTP/1.0", "HTTP/1.1"
  bool tls = false;
  std::string_view method, authority, path;    // path: the target as sent on (origin-form, with the query)
  int status = 0;                              // what the client got; 0: nothing (it left)
  uint64_t bytes_in = 0;                       // request bytes read (head and body)
  uint64_t bytes_out = 0;                      // response bytes written
  double duration_ms = 0;                      // first byte read -> last byte written
  double connect_ms = -1;                      // the answering attempt's connect; -1: none (a pooled connection)
  double upstream_ms = -1;                     // request sent -> the member's response head; -1: none
  std::string_view member, member_addr;        // the last member tried; empty: none
  int attempts = 0;                            // members tried
  uint32_t flags = 0;                          // AccessFlag bits
  std::string_view request_id, trace_id;       // empty: none (a refused request)
  std::string_view user_agent, cache;          // cache: the answer's X-Cache
};

enum class AccessLogFormat { kJson, kText };

// `line` = the record as one JSON object or logfmt line, newline included,
// appended. JSON strings escape control characters and any byte >= 0x80
// (\u00XX), so every line is valid JSON whatever the client sent; text
// quotes values with spaces or quotes and escapes the same bytes as \xXX.
void FormatAccessLine(const AccessRecord& r, AccessLogFormat format, std::string& line);

class AccessLog {
 public:
  struct Options {
    std::string path;                        // file, or "-" for stdout
    AccessLogFormat format = AccessLogFormat::kJson;
    double sample = 1.0;                     // share of successful requests logged (<400, no flags); others always
    size_t shard_bytes = 1 << 20;            // per worker: lines waiting beyond this are dropped
    std::chrono::milliseconds flush_interval{100};
  };
  // Counted by the writer: lines written, lines dropped, failed writes.
  struct Counts {
    uint64_t written = 0, dropped = 0, write_errors = 0, reopens = 0;
  };
  class Shard;

  // Opens the file (O_APPEND, created 0640) and starts the writer thread.
  // `metrics` (optional, outliving the log) counts lines written and dropped.
  static Status Open(Options options, ProxyMetrics* metrics, std::unique_ptr<AccessLog>* out);
  // Writes what is waiting (giving a stalled reader up to a second), then stops.
  ~AccessLog();
  AccessLog(const AccessLog&) = delete;
  AccessLog& operator=(const AccessLog&) = delete;

  // A shard for one worker thread; lives as long as the log.
  Shard* NewShard();
  // Formats and queues `r` on `shard` (the calling worker's), or drops it;
  // sampling applies. Never blocks on I/O.
  void Log(Shard* shard, const AccessRecord& r);
  // The file is opened again by the writer (SIGUSR1, after logrotate's rename).
  void Reopen();
  // Everything queued so far is written (or dropped) when this returns.
  void FlushForTest();
  Counts counts() const;
  const Options& options() const { return options_; }

 private:
  AccessLog(Options options, ProxyMetrics* metrics, int fd);
  void Run() WEBTIER_EXCLUDES(mu_);
  // Writes `data`; false when the writer must stop trying (stopping and stalled).
  bool WriteOut(std::string_view data);
  void ReopenNow();

  const Options options_;
  ProxyMetrics* const metrics_;
  int fd_;                 // the writer thread's
  bool pollable_ = false;  // a pipe or socket: writes wait for room with a timeout
  mutable Mutex mu_;
  std::vector<std::unique_ptr<Shard>> shards_ WEBTIER_GUARDED_BY(mu_);
  CondVar cv_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> kick_{false};  // a shard passed kWakeBytes: write now
  bool reopen_ WEBTIER_GUARDED_BY(mu_) = false;
  uint64_t flush_requested_ WEBTIER_GUARDED_BY(mu_) = 0;
  uint64_t flush_done_ WEBTIER_GUARDED_BY(mu_) = 0;
  Counts counts_ WEBTIER_GUARDED_BY(mu_);
  CondVar flushed_;
  std::thread thread_;
};

}  // namespace webtier::balancer
