// Which request targets name the webnodes' admin routes (/admin/...). The
// public listener refuses them (404, counted as reason admin_path): admin
// actions go through the balancer's admin port, never the public one. Pure;
// safe on any thread.
#pragma once

#include <string_view>

namespace webtier::balancer {

// True when the path of an origin-form `target` (query and fragment ignored),
// percent-decoded (repeatedly, so %2561 counts as 'a'), with empty and "."
// segments dropped and ".." resolved, has a first segment that is "admin" in
// any letter case. Stricter than the webnode's own match on purpose: every
// spelling a member might normalise to its admin routes is refused.
bool IsAdminPath(std::string_view target);

}  // namespace webtier::balancer
