# Multi-stage build: the release binary alone on distroless (glibc), running as non-root.
# Build with standard Docker:  docker build -t plx-store-webhook:0.1.0 .
FROM rust:1-slim-bookworm AS build
WORKDIR /src
# The whole context (see .dockerignore): Cargo.toml names example and bench targets by path.
COPY . .
RUN cargo build --release --locked --bin plx-store-webhook \
 && cp target/release/plx-store-webhook /plx-store-webhook

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /plx-store-webhook /usr/local/bin/plx-store-webhook
USER 65532:65532
EXPOSE 8443 8080
ENTRYPOINT ["/usr/local/bin/plx-store-webhook"]
CMD ["serve", "--config=/etc/plx-store-webhook/config/config.yaml"]
