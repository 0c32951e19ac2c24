# ChangeBank: a static binary on a distroless base, run as a non-root user.
# The build image must be at least go.mod's go line (a test checks it): the
# official golang images set GOTOOLCHAIN=local, so they refuse to build a
# module that asks for a newer Go instead of downloading one. 1.26.7 is the
# newest 1.26 patch in docker-library's records seen here; go.mod asks only
# for 1.26.0, what the dependencies need. The binary is static, so the patch
# level only matters for the standard library compiled into it.
FROM golang:1.26.7-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# Templates and static files are embedded: the binary is all the image needs.
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/changebank .

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/changebank /changebank
# distroless's nonroot user by number: Kubernetes' runAsNonRoot can verify
# a numeric user only, and refuses to start a container whose user is a name.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/changebank"]
