# The operator (manager) image: a static binary on distroless, non-root.
FROM golang:1.26 AS build
ARG VERSION=dev
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/manager .

FROM gcr.io/distroless/static:nonroot
LABEL org.opencontainers.image.title="xtrace-operator" \
      org.opencontainers.image.source="https://github.com/xtrace-dev/xtrace-operator"
COPY --from=build /out/manager /manager
USER 65532:65532
ENTRYPOINT ["/manager"]
