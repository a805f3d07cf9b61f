// Where a miss is answered from when no route of the webnode's own matches:
// the upstream application behind --origin.
#pragma once

#include "webtier/cache/message.h"
#include "webtier/common/status.h"

namespace webtier::cache {

// Implementations are thread-safe and may block (they are only called on
// worker threads). An HTTP answer of any status is Ok; a transport failure is
// kUnavailable (refused, reset, DNS) or kTimeout (connect or read timeout).
class Origin {
 public:
  virtual ~Origin() = default;
  virtual Status Fetch(const Request& request, Response* response) = 0;
};

}  // namespace webtier::cache
