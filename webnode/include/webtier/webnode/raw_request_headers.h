// Makes Pistache 0.0.5 hand request headers over as raw text instead of
// parsing them into typed headers. Its header registry parses every request
// header it knows (Cache-Control, Date, Accept, Host, ...) before any handler
// runs, and a value it does not understand (`Cache-Control: nothing-here`,
// `Date: yesterday`) throws, which Pistache answers with a 500. RFC 9111 5.2.3
// says unknown directives are ignored, and no request header may ever turn a
// request into an error, so only the framing headers Pistache itself needs stay
// typed: Content-Length (its value validated: a bad one is a 400),
// Transfer-Encoding and Connection (neither of whose parsers can throw).
//
// Call once before the first server starts (it edits a process-wide registry
// that Pistache reads without a lock); later calls do nothing. Thread-safe.
#pragma once

namespace webtier::webnode {

void ParseRequestHeadersRaw();

}  // namespace webtier::webnode
