# Builds the gallerist binary into a small image.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/gallerist ./cmd/gallerist

FROM gcr.io/distroless/static-debian12
COPY --from=build /out/gallerist /gallerist
EXPOSE 8080
ENTRYPOINT ["/gallerist"]
CMD ["serve"]
