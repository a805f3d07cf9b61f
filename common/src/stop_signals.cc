// StopSignals: mask set-up and sigwait.
#include "webtier/common/stop_signals.h"

#include <pthread.h>

namespace webtier {

StopSignals::StopSignals() {
  ::signal(SIGPIPE, SIG_IGN);
  sigemptyset(&set_);
  sigaddset(&set_, SIGTERM);
  sigaddset(&set_, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set_, nullptr);
}

int StopSignals::Wait() {
  int signo = 0;
  sigwait(&set_, &signo);
  return signo;
}

}  // namespace webtier
