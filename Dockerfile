# syntax=docker/dockerfile:1
#
# aws-for-fluent-bit with the datadog_logs output plugin.
#
#   docker buildx build --platform linux/amd64,linux/arm64 -t <repo>:<tag> --push .
#   docker build --target mock-intake -t fluent-bit-datadog-mock-intake .   # the mock intake
#
# The default (last) stage is the aws-for-fluent-bit image. The plugin is cross-compiled on the
# build machine's own platform by scripts/release.sh (cargo-zigbuild, glibc 2.17 floor), so a
# multi-arch build does not compile Rust under QEMU.
#
# Base image: a pinned 3.x tag (Amazon Linux 2023, glibc 2.34, Fluent Bit 5.0.x).
# 3.4.5 is the newest tag confirmed in aws/aws-for-fluent-bit itself: its linux.version (commit
# 02c04aa8437dff3e3db2f9bcc735bdc1a77bd59f) lists "major-version": "3", "release-version":
# "3.4.5", Fluent Bit v5.0.7, "publish": "true". Later 3.4.x tags are reported elsewhere (3.4.8 in
# aws-samples/appmod-blueprints PR #785; 3.4.16 in aws/eks-charts PR #1372, an open, unmerged
# PR) but no aws/aws-for-fluent-bit release PR or file seen for them: move the pin up after
# checking https://github.com/aws/aws-for-fluent-bit/releases.
#
# 2.x (Amazon Linux 2, glibc 2.26, Fluent Bit 1.9.10) reached end of life on 2026-06-30
# (aws/aws-for-fluent-bit PR #1117, README). The library's glibc 2.17 floor loads in both, so
# users who still run 2.x can build with
#   --build-arg AWS_FOR_FLUENT_BIT_TAG=2.34.3.20260623
# (the 2.x entry of the same linux.version). Never use `latest` or `stable`: they move, and
# `stable` follows 2.x.
#
# What this stage relies on in the 3.x image, and where it was confirmed (aws/aws-for-fluent-bit):
#   - /fluent-bit/{firehose,cloudwatch,kinesis}.so: scripts/dockerfiles/runtime/Dockerfile
#     (commit 3df8e73dbed110a318e7e8cf5e1464186bb6144e) copies the three Go plugins there; the
#     3.x release PRs (#1016, #1037, #1069, #1070) list the CloudWatch, Kinesis and Firehose
#     Go plugins.
#   - AWS's command: the same Dockerfile ends in CMD ["/entrypoint.sh"]; entrypoint.sh (commit
#     ef67ec80f8b5fbdf439f90fffccc45af3cbee96d) runs fluent-bit with those three -e flags and
#     -c /fluent-bit/etc/fluent-bit.conf, the file FireLens mounts. Our CMD repeats it.
#   - /bin/sh and cat: the 3.x runtime is a dnf --installroot sysroot on scratch
#     (runtime/Dockerfile.deps-al2023); bash and coreutils are in its package list (PR #1026),
#     and runtime/Dockerfile itself runs shell-form RUN steps in it.
#   - curl, for the health checks: in runtime/Dockerfile.deps-al2023 since 3.0.1 (PR #1026,
#     release PR #1037). 2.x images have curl too.
# If a Go plugin were ever missing, `-e` on its path would stop Fluent Bit at start. The
# Plugins_File route does not depend on those paths: keep AWS's own command and point
# FireLens at /fluent-bit/plugins/datadog_logs.conf (README, "Two ways to load the plugin").
ARG AWS_FOR_FLUENT_BIT_TAG=3.4.5
ARG RUST_IMAGE=rust:1-bookworm

# ------------------------------------------------------------------ plugin (cross-compiled)
FROM --platform=$BUILDPLATFORM ${RUST_IMAGE} AS plugin-build
# python3-pip: release.sh installs cargo-zigbuild and ziglang from PyPI; binutils: readelf/objdump.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-pip binutils \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
ARG TARGETARCH
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target,id=fluent-bit-datadog-target,sharing=locked \
    set -eu; \
    case "${TARGETARCH:-amd64}" in \
      amd64) arch=x86_64 ;; \
      arm64) arch=aarch64 ;; \
      *) echo "unsupported TARGETARCH ${TARGETARCH}: only amd64 and arm64" >&2; exit 1 ;; \
    esac; \
    bash scripts/release.sh "$arch"; \
    mkdir -p /out; \
    cp "dist/datadog_logs-linux-$arch.so" /out/datadog_logs.so

# ------------------------------------------------------------------ mock intake (for compose)
FROM ${RUST_IMAGE} AS mock-intake-build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target,id=fluent-bit-datadog-mock-target,sharing=locked \
    cargo build --release --locked -p mock-intake \
 && install -D target/release/mock_intake /out/mock_intake

FROM debian:bookworm-slim AS mock-intake
COPY --from=mock-intake-build /out/mock_intake /usr/local/bin/mock_intake
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/mock_intake"]
CMD ["--addr", "0.0.0.0:8080", "--print"]

# ------------------------------------------------------------------ the log router image
FROM public.ecr.aws/aws-observability/aws-for-fluent-bit:${AWS_FOR_FLUENT_BIT_TAG} AS image
ARG AWS_FOR_FLUENT_BIT_TAG
LABEL org.opencontainers.image.title="aws-for-fluent-bit with datadog_logs" \
      org.opencontainers.image.description="aws-for-fluent-bit ${AWS_FOR_FLUENT_BIT_TAG} plus the datadog_logs output plugin (/fluent-bit/plugins/datadog_logs.so)" \
      org.opencontainers.image.licenses="Apache-2.0"
# Nothing goes under /fluent-bit/etc: FireLens mounts its generated config over it.
COPY --from=plugin-build /out/datadog_logs.so /fluent-bit/plugins/datadog_logs.so
# For the Plugins_File route (firelensConfiguration config-file-value, the init image, or any
# image whose command cannot be changed).
COPY docker/plugins.conf /fluent-bit/plugins/plugins.conf
COPY docker/datadog_logs.conf /fluent-bit/plugins/datadog_logs.conf
# AWS's entrypoint.sh, plus our -e: the three Go plugins must stay loaded for cloudwatch,
# kinesis and firehose outputs to keep working.
CMD ["/bin/sh", "-c", "echo -n 'AWS for Fluent Bit Container Image Version '; cat /AWS_FOR_FLUENT_BIT_VERSION 2>/dev/null || echo; exec /fluent-bit/bin/fluent-bit -e /fluent-bit/firehose.so -e /fluent-bit/cloudwatch.so -e /fluent-bit/kinesis.so -e /fluent-bit/plugins/datadog_logs.so -c /fluent-bit/etc/fluent-bit.conf"]
