# webnode image: build with the project's dependency script, run as a non-root
# user on a slim runtime layer. Build from the repository root:
#   docker build -f deploy/docker/webnode.Dockerfile -t webtier/webnode .
# (deploy/docker-compose.yml does this.) JOBS limits the C++ build's parallelism.
ARG DEBIAN_IMAGE=debian:bookworm-slim

FROM ${DEBIAN_IMAGE} AS build
COPY scripts/install-deps.sh /tmp/install-deps.sh
RUN /tmp/install-deps.sh --build && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt ./
COPY common common
COPY monitoring monitoring
COPY cache cache
COPY webnode webnode
COPY balancer balancer
ARG JOBS=2
RUN cmake -S /src -B /build -DCMAKE_BUILD_TYPE=Release -DWEBTIER_BUILD_TESTS=OFF -DWEBTIER_BUILD_BENCH=OFF -DWEBTIER_BUILD_FUZZ=OFF \
 && cmake --build /build --target webnode -j"${JOBS}" \
 && strip /build/bin/webnode

FROM ${DEBIAN_IMAGE}
COPY scripts/install-deps.sh /tmp/install-deps.sh
RUN /tmp/install-deps.sh --runtime && rm -rf /var/lib/apt/lists/* /tmp/install-deps.sh \
 && useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin webtier
COPY --from=build /build/bin/webnode /usr/local/bin/webnode
COPY deploy/docker/webnode-entrypoint.sh /usr/local/bin/webnode-entrypoint
# Fail the build, not the first start, if a shared library is missing.
RUN ! ldd /usr/local/bin/webnode | grep 'not found'
USER webtier
ENV WEBNODE_LISTEN=0.0.0.0:8080
# /metrics, /ready, the detailed /health and purges: never published to clients.
ENV WEBNODE_ADMIN_LISTEN=0.0.0.0:8081
EXPOSE 8080 8081
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD curl -fsS -m 2 "http://127.0.0.1:${WEBNODE_LISTEN##*:}/health" >/dev/null || exit 1
ENTRYPOINT ["/usr/local/bin/webnode-entrypoint"]
