# ChangeBank: a static binary on a distroless base, run as a non-root user.
# The build stage's Go version is go.mod's (a test checks that they agree).
FROM golang:1.26.8-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# Templates and static files are embedded: the binary is all the image needs.
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/changebank .

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/changebank /changebank
USER nonroot:nonroot
EXPOSE 8080
ENTRYPOINT ["/changebank"]
