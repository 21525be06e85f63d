# syntax=docker/dockerfile:1
#
# One image for every role of auditlog: the `auditlog` binary is the entrypoint and its first
# argument picks the role (standalone | gateway | processor | query-api | init | admin | ...).
#
#   docker build -t auditlog .                                # compiles here (cached deps)
#   docker run --rm -p 8080:8080 -v auditlog-data:/data auditlog      # standalone
#   docker run --rm auditlog gateway --help
#
# Reusing a binary built on the host instead of compiling twice (what the test suite does;
# see README "Deploy"): the host must be Debian 12 (bookworm) or have the same glibc, since
# the binary links the system glibc dynamically.
#
#   cargo build --release -p auditlog
#   mkdir -p .image && cp target/release/auditlog .image/auditlog
#   docker build --build-arg BINARY=prebuilt -t auditlog .
#
# `BINARY=prebuilt` makes the `binary` stage the `prebuilt` one, so the Rust stages are
# never built (BuildKit and buildah/podman skip stages the target does not use). podman 4
# (buildah 1.28) decides which stages are used before it applies this ARG's default, so with
# podman name the compiling stage too: `podman build --build-arg BINARY=build .`
ARG BINARY=build

# ---- build: a Rust toolchain; dependencies compiled in their own cached layer ----------------
FROM rust:1.95-slim-bookworm AS chef
# librdkafka is compiled by rdkafka-sys (C toolchain, make, perl), OpenSSL and zlib linked.
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential pkg-config perl libssl-dev zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /src

FROM chef AS plan
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS build
# The dependency layer: rebuilt only when Cargo.toml / Cargo.lock change, not on every edit.
COPY --from=plan /src/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json --package auditlog
COPY . .
RUN cargo build --release --locked --package auditlog \
 && mkdir -p /out && cp target/release/auditlog /out/auditlog

# ---- prebuilt: a binary built outside, placed at .image/auditlog in the context -------------
FROM scratch AS prebuilt
COPY .image/auditlog /out/auditlog

FROM ${BINARY} AS binary

# ---- rootfs: the binary, the shared libraries it links, CA certificates, a non-root user ---
# The libraries are every one the dynamic loader resolves for the binary, plus the loader.
FROM debian:bookworm-slim AS rootfs
# Before the binary, so this layer stays cached while the binary changes.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 zlib1g \
 && rm -rf /var/lib/apt/lists/*
COPY --from=binary /out/auditlog /usr/local/bin/auditlog
RUN set -eu; \
    root=/rootfs; \
    mkdir -p "$root/usr/local/bin" "$root/etc/ssl/certs" "$root/data" "$root/tmp"; \
    cp /usr/local/bin/auditlog "$root/usr/local/bin/auditlog"; \
    if ldd /usr/local/bin/auditlog | grep 'not found'; then echo "missing libraries" >&2; exit 1; fi; \
    for lib in $(ldd /usr/local/bin/auditlog | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\/.*ld-linux/ { print $1 }'); do \
        cp --parents -L "$lib" "$root"; \
    done; \
    cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"; \
    echo 'root:x:0:0:root:/root:/sbin/nologin' > "$root/etc/passwd"; \
    echo 'auditlog:x:10001:10001:auditlog:/data:/sbin/nologin' >> "$root/etc/passwd"; \
    printf 'root:x:0:\nauditlog:x:10001:\n' > "$root/etc/group"; \
    chown 10001:10001 "$root/data"; \
    chmod 1777 "$root/tmp"

# ---- runtime: nothing but the above: no shell, no package manager, no compiler -------------
FROM scratch AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=https://github.com/auditlog/auditlog
LABEL org.opencontainers.image.title="auditlog" \
      org.opencontainers.image.description="Multi-tenant audit-log platform on Kafka: one image, every role" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=rootfs /rootfs /
# Every role listens on all interfaces in a container, each on its own port; standalone keeps
# its data in /data (mount a volume there). Logs are text on stderr; AUDITLOG_LOG_FORMAT=json
# makes them JSON lines.
ENV AUDITLOG_LISTEN=0.0.0.0:8080 \
    AUDITLOG_GATEWAY_LISTEN=0.0.0.0:8080 \
    AUDITLOG_QUERY_LISTEN=0.0.0.0:8090 \
    AUDITLOG_PROCESSOR_LISTEN=0.0.0.0:9464 \
    AUDITLOG_DATA_DIR=/data \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
# A numeric user, so Kubernetes' runAsNonRoot can verify it without /etc/passwd.
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080 8090 9464
# Every role drains on SIGTERM (requests, live tails, producer flush, processor commits) and
# exits 0; give it the grace period of your orchestrator (Kubernetes' 30 s, docker's -t).
STOPSIGNAL SIGTERM
# Probes /healthz of whichever role listens in this container (the image has no curl).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/auditlog", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/auditlog"]
CMD ["standalone"]
