# Static binary in a small non-root image.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/termind ./cmd/termind

FROM alpine:3.20
RUN adduser -D -u 10001 termind
COPY --from=build /out/termind /usr/local/bin/termind
USER termind
WORKDIR /home/termind
EXPOSE 8080
ENTRYPOINT []
CMD ["termind", "serve", "--listen", "0.0.0.0:8080"]
