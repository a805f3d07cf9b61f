// The EchoBackend as a program, for tests that need a backend process they
// can SIGKILL, and for the benchmark.
// Usage: balancer_test_backend [--port N] --id NAME [--threads N]
// Port 0 (the default) binds any free port; the bound one is in the line
// "component=backend msg=listening address=127.0.0.1:PORT id=NAME" on stderr
// (the format testing::ListeningPort reads).
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <string>

#include "echo_backend.h"

int main(int argc, char** argv) {
  int port = 0, threads = 1;
  std::string id = "backend";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--port") port = std::atoi(argv[i + 1]);
    else if (a == "--id") id = argv[i + 1];
    else if (a == "--threads") threads = std::atoi(argv[i + 1]);
  }
  if (port < 0 || port > 65535 || threads < 1) {
    std::cerr << "usage: balancer_test_backend [--port N] --id NAME [--threads N]\n";
    return 2;
  }
  std::signal(SIGPIPE, SIG_IGN);
  webtier::testing::EchoBackend backend(id, static_cast<uint16_t>(port), threads);
  std::cerr << "component=backend msg=listening address=127.0.0.1:" << backend.port() << " id=" << id << std::endl;
  backend.RunForever();
}
