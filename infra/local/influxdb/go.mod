// Build-only wrapper module for influxd (see docs/infra.md).
// `go install pkg@version` refuses modules with replace directives, so we
// build influxd from this module instead; it carries influxdb's replace line.
module forewarn.local/influxd-build

go 1.23.0

require github.com/influxdata/influxdb/v2 v2.7.12

// Copied from github.com/influxdata/influxdb/v2@v2.7.12/go.mod.
replace github.com/nats-io/nats-streaming-server v0.11.2 => github.com/influxdata/nats-streaming-server v0.11.3-0.20201112040610-c277f7560803
