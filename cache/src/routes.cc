// Route matching for the webnode's own routes.
#include "webtier/cache/routes.h"

namespace webtier::cache {

void RouteTable::Add(Route route) { routes_.push_back(std::move(route)); }

const Route* RouteTable::Match(std::string_view path) const {
  const Route* best = nullptr;
  for (const auto& r : routes_) {
    bool subtree = !r.prefix.empty() && r.prefix.back() == '/';
    bool match = subtree ? path.substr(0, r.prefix.size()) == r.prefix : path == r.prefix;
    if (match && (best == nullptr || r.prefix.size() > best->prefix.size())) best = &r;
  }
  return best;
}

}  // namespace webtier::cache
