# balancer image: build with the project's dependency script, run as a non-root
# user on a slim runtime layer. Build from the repository root:
#   docker build -f deploy/docker/balancer.Dockerfile -t webtier/balancer .
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
 && cmake --build /build --target balancer -j"${JOBS}" \
 && strip /build/bin/balancer

FROM ${DEBIAN_IMAGE}
COPY scripts/install-deps.sh /tmp/install-deps.sh
RUN /tmp/install-deps.sh --runtime && rm -rf /var/lib/apt/lists/* /tmp/install-deps.sh \
 && useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin webtier \
 && mkdir -p /var/lib/webtier && chown webtier:webtier /var/lib/webtier
COPY --from=build /build/bin/balancer /usr/local/bin/balancer
RUN ! ldd /usr/local/bin/balancer | grep 'not found'
USER webtier
ENV BALANCER_LISTEN=0.0.0.0:8000 \
    BALANCER_ADMIN_LISTEN=0.0.0.0:9000 \
    BALANCER_STATE_FILE=/var/lib/webtier/pool.json
VOLUME /var/lib/webtier
EXPOSE 8000 9000
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD curl -fsS -m 2 "http://127.0.0.1:${BALANCER_ADMIN_LISTEN##*:}/health" >/dev/null || exit 1
ENTRYPOINT ["/usr/local/bin/balancer"]
