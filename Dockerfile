# Static binary in a small non-root image.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# CGO off: a static binary (SQLite is pure Go). -buildvcs=false: the build
# context has no .git (see .dockerignore); the version comes from VERSION.
RUN CGO_ENABLED=0 go build -trimpath -buildvcs=false \
      -ldflags "-s -w -X main.version=${VERSION}" -o /out/termind ./cmd/termind

# Alpine rather than scratch: CA certificates for SMTP, Twilio and Google
# over TLS, and busybox wget for health checks. Zone data is compiled in.
FROM alpine:3.20
RUN adduser -D -u 10001 termind
COPY --from=build /out/termind /usr/local/bin/termind
# Numeric, so that orchestrators can verify the user is not root.
USER 10001:10001
WORKDIR /home/termind
EXPOSE 8080
ENTRYPOINT []
CMD ["termind", "serve", "--listen", "0.0.0.0:8080"]
