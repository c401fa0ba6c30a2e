# syntax=docker/dockerfile:1
#
# wolkvox-exporter as a small container: a static (musl) binary on distroless/static,
# running as a non-root user. distroless/static brings the CA certificates that
# reqwest's rustls reads (/etc/ssl/certs) and a passwd entry for `nonroot`; time zone
# data is compiled into the binary (jiff's tzdb-bundle-always), so the image needs none.
# Expected size: about 12 MiB: 2 MiB of base and the binary, 10 MiB once stripped (measured
# for x86_64-unknown-linux-musl with this Cargo.toml's release profile).
#
#   docker build --build-arg REVISION=$(git rev-parse --short=12 HEAD) -t wolkvox-exporter .
#   docker run -p 10150:10150 -v wolkvox-state:/var/lib/wolkvox-exporter \
#     -v ./config.yaml:/etc/wolkvox-exporter/config.yaml:ro \
#     -v ./acme.token:/run/secrets/acme_token:ro \
#     -e WOLKVOX_EXPORTER_CONFIG=/etc/wolkvox-exporter/config.yaml wolkvox-exporter
#   docker run -p 10150:10150 wolkvox-exporter --demo

# ---- build: Alpine's Rust targets musl natively, so the binary comes out static.
FROM rust:1-alpine AS build
# ring (TLS) compiles C and assembly.
RUN apk add --no-cache musl-dev
WORKDIR /src
# Cargo reads every target the manifest declares, benches and tests included.
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
COPY benches ./benches
COPY tests ./tests
# The commit, for wolkvox_exporter_build_info{revision}: build.rs asks git, and the
# build context has no .git, so it takes WOLKVOX_REVISION (unset: "unknown").
ARG REVISION=unknown
# Symbols are stripped (12 -> 10 MiB).
ENV WOLKVOX_REVISION=${REVISION} CARGO_PROFILE_RELEASE_STRIP=symbols
RUN cargo build --release --locked --bin wolkvox-exporter \
    && ./target/release/wolkvox-exporter --version
# The state directory, owned by distroless's nonroot user (65532).
RUN mkdir -p /out/state && chown 65532:65532 /out/state

# ---- run
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /src/target/release/wolkvox-exporter /wolkvox-exporter
COPY --from=build --chown=65532:65532 /out/state /var/lib/wolkvox-exporter
USER 65532:65532
ENV WOLKVOX_EXPORTER_STATE_DIR=/var/lib/wolkvox-exporter
VOLUME ["/var/lib/wolkvox-exporter"]
EXPOSE 10150
# The check finds the exporter from its listen address and web config (HTTPS when TLS
# is on; a 401 counts as up when basic auth is on). It shares the container's
# environment, not the exporter's arguments: set those two as
# WOLKVOX_EXPORTER_LISTEN_ADDRESS and WOLKVOX_EXPORTER_WEB_CONFIG_FILE, or point it
# elsewhere with WOLKVOX_EXPORTER_HEALTHCHECK_URL.
HEALTHCHECK --interval=30s --timeout=10s --start-period=10s --retries=3 \
    CMD ["/wolkvox-exporter", "healthcheck"]
ENTRYPOINT ["/wolkvox-exporter"]
