# Multi-stage build: the release binary alone on distroless (glibc), running as non-root.
#   docker build --build-arg GIT_COMMIT=$(git rev-parse HEAD) -t plx-store-webhook:0.1.0 .
# Reproducing an image: check out the release tag, build with the same GIT_COMMIT; the bases are
# named by version below (the toolchain the release was built and tested with — Cargo.lock's
# notify-types needs at least 1.91 — on Debian 12 "bookworm", as the runtime) and the
# dependencies are the ones in Cargo.lock (--locked). Mirror the bases into your registry and pin
# them by digest (FROM name@sha256:...) for byte-identical rebuilds.
ARG RUST_IMAGE=rust:1.95.0-slim-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM ${RUST_IMAGE} AS build
WORKDIR /src
# The whole context (see .dockerignore; no .git): Cargo.toml names example and bench targets by path.
COPY . .
# What `--version` reports (build.rs), since the context has no .git.
ARG GIT_COMMIT=unknown
ENV GIT_COMMIT=${GIT_COMMIT}
# Paths in panics and debug info independent of the build directory.
ENV RUSTFLAGS="--remap-path-prefix=/src=. --remap-path-prefix=/usr/local/cargo=cargo"
RUN cargo build --release --locked --bin plx-store-webhook \
 && cp target/release/plx-store-webhook /plx-store-webhook \
 && /plx-store-webhook --version

FROM ${RUNTIME_IMAGE}
ARG GIT_COMMIT=unknown
LABEL org.opencontainers.image.title="plx-store-webhook" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.revision="${GIT_COMMIT}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /plx-store-webhook /usr/local/bin/plx-store-webhook
USER 65532:65532
EXPOSE 8443 8080
ENTRYPOINT ["/usr/local/bin/plx-store-webhook"]
CMD ["serve", "--config=/etc/plx-store-webhook/config/config.yaml"]
