// Process-wide stop signals for the programs: SIGPIPE ignored, SIGTERM and
// SIGINT blocked in every thread and taken synchronously by Wait(), so that
// shutdown runs in an ordinary thread, not in a signal handler.
#pragma once

#include <signal.h>

namespace webtier {

class StopSignals {
 public:
  // Construct in main() before any thread starts: threads inherit the mask.
  StopSignals();
  // Blocks until SIGTERM or SIGINT arrives; returns its number.
  int Wait();

 private:
  sigset_t set_;
};

}  // namespace webtier
