// The handover of a running balancer to its successor (hitless restart and
// upgrade; balancer/README.md "Restart and upgrade without a dropped request").
//
// The old process listens on --control-socket (a Unix stream socket, mode
// 0600; only its own user or root may connect). A new process started with
// --takeover becomes ready first (pool, first health checks, TLS), then:
//
//   successor -> "takeover 1\n"
//   old       -> the Handover as text, "end\n" last, with every listening
//                socket attached in one SCM_RIGHTS message
//   successor    checks each socket against its line, starts accepting on them
//   successor -> "ready\n"
//   old       -> "draining\n"; stops accepting, drains; "left C R\n" (client
//                connections, requests in flight) every 250 ms until it exits
//
// The sockets are the same kernel objects in both processes, so a connection
// waiting in an accept queue is taken by whichever process accepts first and
// none is lost (two SO_REUSEPORT groups would drop the old queue on close).
// Until "ready" arrives the old process goes on serving; a successor that lies,
// sends the wrong sockets or disappears changes nothing there, and the
// successor exits with the reason.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "webtier/common/status.h"

namespace webtier::balancer::control {

// The roles a handed-over socket can have.
inline constexpr std::string_view kProxyRole = "proxy";      // --listen (one per proxy thread)
inline constexpr std::string_view kTlsRole = "tls";          // --tls-listen (one per proxy thread)
inline constexpr std::string_view kAdminRole = "admin";      // --admin-listen
inline constexpr std::string_view kControlRole = "control";  // --control-socket itself

// One listening socket. `address` is what getsockname says: "ip:port"
// ("[v6]:port"), or the path of a Unix socket.
struct Listener {
  std::string role;
  std::string address;
  int fd = -1;
};

// A member's passive state, by record key: what makes the successor treat a
// broken member as the old process did instead of trying it from scratch.
struct MemberState {
  std::string key;
  int64_t ejected_ms = 0;  // time left in its ejection; 0 = not ejected
  int ejections = 0;       // consecutive ejections (its next back-off)
};

// What a balancer hands to its successor.
struct Handover {
  pid_t pid = 0;                    // the old process
  std::vector<Listener> listeners;  // in the order the sockets travel
  std::string ticket_keys;          // TlsContext::ExportTicketKeys(); empty without TLS
  std::vector<MemberState> members;
  // Closes every socket not taken (fd >= 0) and marks it taken.
  void CloseSockets();
  // The sockets of `role`, taken out of the list (their fd set to -1 here).
  std::vector<Listener> Take(std::string_view role);
};

// Where the old process's drain stands.
struct DrainProgress {
  int connections = 0;  // client connections still open
  int requests = 0;     // requests in flight
};

// The text that travels with the sockets (no descriptor numbers), and back.
// Decode checks the syntax of every line; kInvalidArgument says which one.
std::string EncodeHandover(const Handover& handover);
Status DecodeHandover(std::string_view text, Handover* out);

// Sends `text` on the Unix socket `sock` with copies of `fds` attached to its
// first byte (one SCM_RIGHTS message); false when it did not all go.
bool SendWithSockets(int sock, std::string_view text, const std::vector<int>& fds);

// "ip:port" of a bound socket ("[v6]:port"), the path of a Unix one, "" on error.
std::string SocketAddress(int fd);

// Each step of the protocol waits at most this long for the peer.
inline constexpr std::chrono::milliseconds kStepTimeout{10000};

// The old process's side: a thread that serves one takeover at a time.
class ControlServer {
 public:
  struct Hooks {
    // What to hand over; the descriptors stay the caller's (sent as copies).
    std::function<Handover()> offer;
    // The successor accepts on the sockets: stop accepting, start the drain.
    // Runs on the server's thread, once.
    std::function<void(pid_t successor)> handed_over;
    // Sent to the successor every 250 ms after the handover.
    std::function<DrainProgress()> progress;
  };

  ControlServer(std::string path, Hooks hooks);
  ~ControlServer();  // Stop()
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  // Listens on the path: `inherited` (a listening Unix socket handed over by
  // the predecessor) when >= 0, else a new socket bound there (a stale file
  // nobody answers on is replaced; a live balancer there is an error).
  Status Listen(int inherited = -1);
  // Serves takeovers on a thread of its own until Stop() or a handover.
  void Start();
  // Ends the thread (after telling a successor the drain is over). Removes
  // the socket file unless it was handed over (it is the successor's now).
  void Stop();

  int fd() const { return fd_; }
  const std::string& path() const { return path_; }
  bool handed_over() const { return handed_over_.load(); }

 private:
  void Run();
  // One connection: false when it was not a successful handover.
  bool Serve(int conn);
  void ReportDrain(int conn);

  const std::string path_;
  Hooks hooks_;
  int fd_ = -1;
  int wake_[2] = {-1, -1};  // a pipe: Stop() writes, the thread's poll wakes
  std::atomic<bool> handed_over_{false};
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

// The new process's side.
class Successor {
 public:
  // Connects to the balancer at `path`. kNotFound when there is none (no
  // socket file, or nothing listens on it): then there is nothing to take
  // over. kUnavailable for the rest (refused by its owner, a failed connect).
  static Status Connect(const std::string& path, std::unique_ptr<Successor>* out);
  ~Successor();
  Successor(const Successor&) = delete;
  Successor& operator=(const Successor&) = delete;

  // Asks for the sockets and checks them: each one a listening stream socket
  // bound where its line says, as many as the lines, the sender the process
  // it claims to be. On any error every received socket is closed.
  Status Receive(Handover* out);
  // Tells the old process the sockets are being accepted on; waits for its
  // "draining". After that the old process does not accept any more.
  Status Confirm();
  // Reads the old process's drain reports until it exits (blocking; run it on
  // a thread). `report` gets each one, and done=true once at the end.
  void FollowDrain(const std::function<void(DrainProgress, bool done)>& report);
  // Cuts a FollowDrain short (from another thread).
  void Close();

  // The old process (known once Receive got the handover; 0 before).
  pid_t peer_pid() const { return peer_pid_; }

 private:
  explicit Successor(int fd, pid_t peer_pid) : fd_(fd), peer_pid_(peer_pid) {}
  int fd_;
  pid_t peer_pid_;
};

// Tells systemd (when $NOTIFY_SOCKET is set) `state`, e.g. "READY=1".
// Returns false when there is no such socket or the message did not go.
bool NotifySystemd(std::string_view state);

}  // namespace webtier::balancer::control
