// ParseRequestHeadersRaw: trims Pistache 0.0.5's header registry.
#include "webtier/webnode/raw_request_headers.h"

#include <pistache/http.h>
#include <pistache/http_headers.h>

#include <cctype>
#include <mutex>
#include <string>
#include <vector>

#include "webtier/common/log.h"

namespace webtier::webnode {
namespace {

using Pistache::Http::Header::Registry;

// Pistache 0.0.5's Registry can register headers but never unregister one, and
// keeps its table private. An explicit template instantiation may name a
// private member ([temp.spec.general]/6), so this hands out a pointer to it.
struct RegistryTableTag {};
template <auto Member>
struct RegistryTableAccess {
  friend constexpr auto RegistryTable(RegistryTableTag) { return Member; }
};
constexpr auto RegistryTable(RegistryTableTag);
template struct RegistryTableAccess<&Registry::registry>;

// Content-Length as Pistache reads it (the body parser needs the typed header),
// but a value that is not a plain decimal number is the client's error (400),
// where Pistache's own parser lets std::stoull throw (500) or reads it as 0.
class CheckedContentLength : public Pistache::Http::Header::ContentLength {
 public:
  void parse(const std::string& data) override {  // Header
    std::string_view v = data;
    while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
    uint64_t n = 0;
    bool ok = !v.empty() && v.size() <= 18;
    for (char c : v) ok = ok && std::isdigit(static_cast<unsigned char>(c)) != 0;
    if (!ok) throw Pistache::Http::HttpError(Pistache::Http::Code::Bad_Request, "invalid Content-Length");
    for (char c : v) n = n * 10 + static_cast<uint64_t>(c - '0');
    ContentLength::parse(std::to_string(n));
  }
};

void TrimRegistry() {
  Registry& registry = Registry::instance();
  auto& table = registry.*RegistryTable(RegistryTableTag{});
  std::vector<std::string> dropped;
  for (auto it = table.begin(); it != table.end();) {
    const std::string& name = it->first;
    const bool framing = Pistache::Http::Header::LowercaseEqualStatic(name, "content-length") ||
                         Pistache::Http::Header::LowercaseEqualStatic(name, "transfer-encoding") ||
                         Pistache::Http::Header::LowercaseEqualStatic(name, "connection");
    if (framing) {
      ++it;
    } else {
      dropped.push_back(name);
      it = table.erase(it);
    }
  }
  table.erase("Content-Length");
  table.emplace("Content-Length", [] { return std::unique_ptr<Pistache::Http::Header::Header>(new CheckedContentLength()); });
  log::Debug("http", "request headers arrive raw").kv("untyped", static_cast<int64_t>(dropped.size()));
}

}  // namespace

void ParseRequestHeadersRaw() {
  static std::once_flag once;
  std::call_once(once, TrimRegistry);
}

}  // namespace webtier::webnode
