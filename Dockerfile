# syntax=docker/dockerfile:1
#
# The Sluice image: one binary, /sluice, whose subcommand picks the service
# (`docker run IMAGE ingest`, `process`, `sink`, `generate`, `topics`, ...).
#
#   docker build -t sluice:dev .
#   docker compose up        (docker-compose.yml builds this file)
#
# Why cgo, and why glibc on both sides: the sink's embedded warehouse is DuckDB
# (github.com/duckdb/duckdb-go/v2), a C++ library linked in through cgo. Its bindings ship
# a prebuilt static libduckdb for linux/amd64 and linux/arm64 built against glibc, and the
# link needs the C++ runtime (-lstdc++ -lm -ldl). So the binary is built with
# CGO_ENABLED=1 by gcc/g++ on Debian 12 (golang:*-bookworm, glibc 2.36) and runs on the
# same Debian 12 release, which carries glibc, libstdc++6 and libgcc-s1 (the binary needs
# libc, libm, libstdc++.so.6 and libgcc_s: at most GLIBC_2.34 and GLIBCXX_3.4.30). A musl
# (Alpine) build would not link against those archives; `FROM scratch` would lack the
# shared C++ runtime. Building for another platform (`docker buildx build --platform
# linux/arm64`) runs this builder under emulation, so no cross C toolchain is needed.
#
# The runtime could equally be distroless cc-debian12:nonroot (same glibc and libstdc++,
# no shell, no package manager); debian:12-slim is used here so that the image comes
# from the same registry as the rest of docker-compose.yml and one `apt-get` adds the CA
# bundle (TLS to MSK and Snowflake) and time zones. Either way the health check is the
# binary itself (`sluice health`), so no curl or shell is needed.

ARG GO_VERSION=1.26
# Debian 12 on both sides: golang:*-bookworm is Debian 12, so the glibc the binary is
# linked against is the one it runs on.
ARG DEBIAN_VERSION=12

# ---- build ------------------------------------------------------------------------
FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
ENV CGO_ENABLED=1 \
    GOFLAGS=-mod=readonly

# Modules first: this layer is rebuilt only when go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download && go mod verify

COPY . .
# -trimpath keeps build paths out of the binary; -s -w drop the symbol table and DWARF
# (about a third of the size). Sluice reports its version from the Go build info
# (sluice_build_info{version}); the build context holds no .git, so no VCS revision is
# stamped and there is no -X variable to set.
RUN --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -ldflags "-s -w" -o /out/sluice ./cmd/sluice \
 && mkdir -p /out/data

# ---- runtime ----------------------------------------------------------------------
FROM debian:${DEBIAN_VERSION}-slim AS runtime
ARG VERSION=dev
LABEL org.opencontainers.image.title="sluice" \
      org.opencontainers.image.description="Sluice event-streaming platform: ingest, process, sink" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="https://github.com/sluicehq/sluice"

RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates tzdata \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 65532 sluice \
 && useradd --system --uid 65532 --gid 65532 --home-dir /data --no-create-home \
      --shell /usr/sbin/nologin sluice

COPY --from=build /out/sluice /sluice
# /data holds the DuckDB file (sluice sink --duckdb-path /data/sluice.duckdb). A named
# volume mounted here starts with this directory's owner, so the non-root user can write.
COPY --from=build --chown=65532:65532 /out/data /data
WORKDIR /data

# Numeric ids so that orchestrators can verify runAsNonRoot without reading /etc/passwd.
USER 65532:65532

# The ingest API, or /metrics and /healthz of every other service (--http-addr).
EXPOSE 8080

# GET http://127.0.0.1:<port of --http-addr>/healthz; one-shot commands (topics,
# generate) turn it off in docker-compose.yml.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/sluice", "health", "--timeout", "3s"]

ENTRYPOINT ["/sluice"]
CMD ["help"]
