// The admin port's way to the webnodes' admin routes: `POST /admin/...` on
// --admin-listen is sent to one member of the pool (the first that accepts a
// connection, skipping ejected members while others remain), with the
// client's Authorization and body, and that member's answer is returned. The
// member checks the token and announces a purge to every node itself, so
// compose and Kubernetes users purge without exposing /admin/ publicly (the
// public listener refuses it, see admin_path.h). Runs on the admin server's
// io_context; one call per request, no shared state.
#pragma once

#include <chrono>
#include <memory>
#include <vector>

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include "io.h"
#include "webtier/balancer/host.h"

namespace webtier::balancer {

// `members` in the order to try them. Every failure to reach a member moves
// on to the next; none reachable (or an empty pool) is a 502/503 JSON answer.
awaitable<http::response<http::string_body>> ForwardAdminRequest(const http::request<http::string_body>& req,
                                                                 std::vector<std::shared_ptr<Host>> members,
                                                                 std::chrono::milliseconds timeout);

}  // namespace webtier::balancer
