# Image for the compose demo (docker-compose.yml beside this file); build context is the
# repository root. UNTESTED where no Docker engine runs.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN cargo build --release --locked

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates tzdata \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/wolkvox-exporter /usr/local/bin/wolkvox-exporter
USER nobody
EXPOSE 10150
ENTRYPOINT ["/usr/local/bin/wolkvox-exporter"]
