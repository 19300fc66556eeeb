# aws-for-fluent-bit with the Kinesis Data Streams output kinesis_streams_go added.
#
#   docker build -t fluent-bit-kinesis-go .
#   docker build --build-arg BASE_TAG=3.4.17 --build-arg GO_VERSION=1.26 -t fluent-bit-kinesis-go .
#
# Stage 1 builds build/kinesis_streams_go.so with the project's own Makefile (`make build`).
# Stage 2 adds it to the aws-for-fluent-bit image as /fluent-bit/kinesis_streams_go.so, adds the
# plugins file /fluent-bit/etc/plugins.conf that loads it, and runs Fluent Bit with it loaded.
#
# Assumptions about the base image, from aws/aws-for-fluent-bit (not verifiable here: this
# Dockerfile was written without registry access; make test checks it statically):
# - Fluent Bit is /fluent-bit/bin/fluent-bit, its configuration /fluent-bit/etc/fluent-bit.conf
#   (where FireLens and DaemonSet ConfigMaps put theirs), and its own Go plugins are
#   /fluent-bit/{firehose,cloudwatch,kinesis}.so, loaded by /entrypoint.sh with -e flags.
# - Version 3.x tags are Amazon Linux 2023 (glibc 2.34). The library built on Debian bookworm
#   needs glibc 2.34; it does not load on the 2.x tags (Amazon Linux 2, glibc 2.26).
# - The image references no plugins file by default, so the CMD below adds one -e to the base
#   image's command. To keep the base image's /entrypoint.sh instead, override CMD and add
#   `plugins_file /fluent-bit/etc/plugins.conf` to your [SERVICE] section (YAML: `plugins:`
#   with /fluent-bit/kinesis_streams_go.so).

ARG GO_VERSION=1.26
ARG BASE_IMAGE=public.ecr.aws/aws-observability/aws-for-fluent-bit
ARG BASE_TAG=3.4.17

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
# Modules first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
# .dockerignore keeps build output, tests' node_modules and .git out of the context.
COPY . .
RUN make build

FROM ${BASE_IMAGE}:${BASE_TAG}
COPY --from=build /src/build/kinesis_streams_go.so /fluent-bit/kinesis_streams_go.so
COPY docker/plugins.conf /fluent-bit/etc/plugins.conf
# The base image's command with the plugin loaded; exec form: no shell needed.
CMD ["/fluent-bit/bin/fluent-bit", \
     "-e", "/fluent-bit/firehose.so", "-e", "/fluent-bit/cloudwatch.so", "-e", "/fluent-bit/kinesis.so", \
     "-e", "/fluent-bit/kinesis_streams_go.so", \
     "-c", "/fluent-bit/etc/fluent-bit.conf"]
