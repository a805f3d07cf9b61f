// Conditional requests around the cache (RFC 9110 13, RFC 9111 4.3): client
// conditionals answered from a full response, 304 answers, the update of a
// stored response by a 304, and the request the cache sends the origin for a
// fill (no one client's Range, conditionals or credentials; the stored
// response's validators when revalidating). Pure functions, thread-safe.
#pragma once

#include "webtier/cache/message.h"

namespace webtier::cache {

// True when `request`'s If-None-Match (or, without it, If-Modified-Since,
// compared with Last-Modified, else Date: RFC 9111 4.3.2) says the client
// already has `response` (a 200): answer it with a 304.
bool ClientHasIt(const Request& request, const Response& response);

// A single byte range (RFC 9110 14) of a 200 `response` the client asked for
// with Range (and a matching If-Range, if any): turns it into a 206 with
// Content-Range. Other ranges (several, unsatisfiable, not bytes) leave the
// full response, which RFC 9110 14.2 allows. True when it made a 206.
bool ApplyRange(const Request& request, Response* response);

// The 304 for `full`: its fields without the body's own metadata.
Response NotModifiedFor(const Response& full);

// RFC 9111 3.2 / 4.3.4: every field of the 304 replaces the stored lines of
// that name (Content-Length excepted); the body stays.
void UpdateFrom304(Response* stored, const Response& not_modified);

// The GET a fill sends to the origin for `client`: its fields minus Range,
// If-Range, If-Match, If-None-Match, If-Modified-Since, If-Unmodified-Since,
// Authorization and Cookie; plus If-None-Match / If-Modified-Since from
// `validate` (a stored response being revalidated) when given.
Request OriginRequestFor(const Request& client, const Response* validate);

}  // namespace webtier::cache
