# First version: builds the plugin with the project's own Makefile and adds it to
# the aws-for-fluent-bit image. Load it with -e /fluent-bit/kinesis_streams_go.so.
ARG GO_VERSION=1.26
ARG BASE_IMAGE=public.ecr.aws/aws-observability/aws-for-fluent-bit:stable

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN make build

FROM ${BASE_IMAGE}
COPY --from=build /src/build/kinesis_streams_go.so /fluent-bit/kinesis_streams_go.so
