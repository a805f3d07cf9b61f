// The benchmark reference: a bare Pistache 0.0.5 hello-world with nothing of
// webtier in it. Usage: bench_bare_pistache PORT THREADS
#include <pistache/endpoint.h>
#include <pistache/http.h>
#include <signal.h>

#include <cstdlib>
#include <string>

using namespace Pistache;

class Hello : public Http::Handler {
 public:
  HTTP_PROTOTYPE(Hello)
  void onRequest(const Http::Request&, Http::ResponseWriter writer) override {  // Http::Handler
    writer.send(Http::Code::Ok, R"({"message":"Hello from bench!","server":"bench"})");
  }
};

int main(int argc, char** argv) {
  if (argc < 3) return 2;
  ::signal(SIGPIPE, SIG_IGN);
  Http::Endpoint endpoint(Address(Ipv4::loopback(), Port(static_cast<uint16_t>(std::atoi(argv[1])))));
  endpoint.init(Http::Endpoint::options().threads(std::atoi(argv[2])).flags(Tcp::Options::ReuseAddr));
  endpoint.setHandler(Http::make_handler<Hello>());
  endpoint.serve();
}
