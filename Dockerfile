# aws-for-fluent-bit with the Kinesis Data Streams output kinesis_streams_go, for linux/amd64 and
# linux/arm64:
#
#   docker buildx build --platform linux/amd64,linux/arm64 -t fluent-bit-kinesis-go .
#   docker build --build-arg BASE_TAG=3.4.17 -t fluent-bit-kinesis-go .
#
# Stage 1 runs on the build machine's own platform and cross-compiles the library for the target
# platform with the project's Makefile (`make dist-linux-arm64` writes dist/linux-arm64/
# kinesis_streams_go.so and checks its exports and the glibc it needs), so an arm64 image needs no
# emulation. Stage 2 adds it to the aws-for-fluent-bit image of the target platform as
# /fluent-bit/kinesis_streams_go.so, with the plugins file /fluent-bit/etc/plugins.conf, and runs
# Fluent Bit with only this plugin loaded: not the base image's three Go plugins (firehose,
# cloudwatch, kinesis), because each Go plugin brings its own Go runtime into the process, which Go
# does not support well, and its own memory. The README says how to load them again.
#
# Assumptions about the base image, from aws/aws-for-fluent-bit (not verifiable here: this
# Dockerfile was written without registry access; make test checks it statically):
# - Fluent Bit is /fluent-bit/bin/fluent-bit, its configuration /fluent-bit/etc/fluent-bit.conf
#   (where FireLens and DaemonSet ConfigMaps put theirs); its own command is /entrypoint.sh, which
#   loads the Go plugins /fluent-bit/{firehose,cloudwatch,kinesis}.so with -e.
# - Version 3.x tags are Amazon Linux 2023 (glibc 2.34), for amd64 and arm64; the library needs
#   glibc 2.34 and does not load on the 2.x tags (Amazon Linux 2, glibc 2.26).

ARG GO_VERSION=1.26
ARG BASE_IMAGE=public.ecr.aws/aws-observability/aws-for-fluent-bit
ARG BASE_TAG=3.4.17

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-bookworm AS build
ARG BUILDARCH
ARG TARGETOS
ARG TARGETARCH
# The C cross compiler and the target's C library, when the target is not the build machine's.
RUN set -e; \
    if [ "$TARGETARCH" != "$BUILDARCH" ]; then \
        case "$TARGETARCH" in \
            arm64) pkgs="gcc-aarch64-linux-gnu libc6-dev-arm64-cross" ;; \
            amd64) pkgs="gcc-x86-64-linux-gnu libc6-dev-amd64-cross" ;; \
            *) echo "unsupported TARGETARCH $TARGETARCH: want amd64 or arm64" >&2; exit 1 ;; \
        esac; \
        apt-get update; \
        apt-get install -y --no-install-recommends $pkgs; \
        rm -rf /var/lib/apt/lists/*; \
    fi
WORKDIR /src
# Modules first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
# .dockerignore keeps build output, tests' node_modules and .git out of the context.
COPY . .
RUN make dist-${TARGETOS}-${TARGETARCH}

FROM ${BASE_IMAGE}:${BASE_TAG}
ARG TARGETOS
ARG TARGETARCH
COPY --from=build /src/dist/${TARGETOS}-${TARGETARCH}/kinesis_streams_go.so /fluent-bit/kinesis_streams_go.so
COPY docker/plugins.conf /fluent-bit/etc/plugins.conf
# Fluent Bit with this plugin only; exec form: no shell needed.
CMD ["/fluent-bit/bin/fluent-bit", "-e", "/fluent-bit/kinesis_streams_go.so", "-c", "/fluent-bit/etc/fluent-bit.conf"]
