// The admin port's way to the webnodes' purge: `POST /admin/purge?path=...`
// (or `?tag=...`) on --admin-listen is sent to one member of the pool (the
// first that accepts a connection, skipping ejected members while others
// remain), at its "admin" endpoint when its record publishes one, else at its
// service endpoint, with the client's Authorization and body, and that
// member's answer is returned. Nothing else is forwarded: another method on
// /admin/purge is a 405, any other /admin/ target (or a purge naming neither
// path nor tag) a 404, answered here. The
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

#include "engine/io.h"
#include "webtier/balancer/upstream/member.h"

namespace webtier::balancer {

// `members` in the order to try them. Every failure to reach a member moves
// on to the next; none reachable (or an empty pool) is a 502/503 JSON answer.
awaitable<http::response<http::string_body>> ForwardAdminRequest(const http::request<http::string_body>& req,
                                                                 std::vector<std::shared_ptr<Member>> members,
                                                                 std::chrono::milliseconds timeout);

}  // namespace webtier::balancer
