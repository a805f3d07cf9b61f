// TestOrigin on Pistache.
#include "test_origin.h"

#include <pistache/endpoint.h>
#include <pistache/http.h>

#include <chrono>
#include <thread>

#include "webtier/webnode/text_header.h"

namespace webtier::cache::testing {

using namespace Pistache;

struct TestOrigin::State {
  mutable std::mutex mu;
  std::map<std::string, Canned> canned;
  std::map<std::string, int> hits;
  std::map<std::string, std::vector<Headers>> requests;
  std::atomic<bool> failing{false};
};

namespace {

class Handler : public Http::Handler {
 public:
  HTTP_PROTOTYPE(Handler)
  Handler() = default;
  explicit Handler(std::shared_ptr<TestOrigin::State> state) : state_(std::move(state)) {}

  void onRequest(const Http::Request& request, Http::ResponseWriter writer) override {
    TestOrigin::Canned canned;
    bool found = false;
    Headers seen;
    for (const auto& [name, raw] : request.headers().rawList()) seen.emplace_back(raw.name(), raw.value());
    {
      std::lock_guard<std::mutex> lock(state_->mu);
      ++state_->hits[request.resource()];
      state_->requests[request.resource()].push_back(seen);
      auto it = state_->canned.find(request.resource());
      if (it != state_->canned.end()) {
        canned = it->second;
        found = true;
      }
    }
    if (canned.delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(canned.delay_ms));
    if (state_->failing.load()) {
      writer.send(Http::Code::Service_Unavailable, "origin down");
      return;
    }
    if (!found) {
      canned.response.headers = {{"Content-Type", "text/plain"}, {"Cache-Control", "max-age=60"}};
      canned.response.body = "origin:" + request.resource() + request.query().as_str();
    }
    for (const auto& [name, value] : canned.response.headers) {
      webnode::SetHeader(writer.headers(), name, value);  // Pistache drops addRaw() headers
    }
    if (!canned.echo.empty()) canned.response.body += std::string(FindHeader(seen, canned.echo));
    std::string_view etag = FindHeader(canned.response.headers, "ETag");
    if (canned.conditional && !etag.empty() && FindHeader(seen, "If-None-Match") == etag) {
      writer.send(Http::Code::Not_Modified, "");
      return;
    }
    writer.send(static_cast<Http::Code>(canned.response.status), canned.response.body);
  }

 private:
  std::shared_ptr<TestOrigin::State> state_;
};

}  // namespace

TestOrigin::TestOrigin() : state_(std::make_shared<State>()) {
  endpoint_ = std::make_unique<Http::Endpoint>(Address("127.0.0.1", Port(0)));
  endpoint_->init(Http::Endpoint::options().threads(4).flags(Tcp::Options::ReuseAddr));
  endpoint_->setHandler(std::make_shared<Handler>(state_));
  endpoint_->serveThreaded();
  port_ = static_cast<uint16_t>(endpoint_->getPort());
}

TestOrigin::~TestOrigin() { endpoint_->shutdown(); }

void TestOrigin::Set(const std::string& path, Canned canned) {
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->canned[path] = std::move(canned);
}

void TestOrigin::SetFailing(bool failing) { state_->failing.store(failing); }

int TestOrigin::Hits(const std::string& path) const {
  std::lock_guard<std::mutex> lock(state_->mu);
  auto it = state_->hits.find(path);
  return it == state_->hits.end() ? 0 : it->second;
}

std::vector<Headers> TestOrigin::Requests(const std::string& path) const {
  std::lock_guard<std::mutex> lock(state_->mu);
  auto it = state_->requests.find(path);
  return it == state_->requests.end() ? std::vector<Headers>{} : it->second;
}

int TestOrigin::TotalHits() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  int total = 0;
  for (const auto& [path, n] : state_->hits) total += n;
  return total;
}

}  // namespace webtier::cache::testing
