//go:build tools

// Package tools pins, in go.mod/go.sum, the two programs infra/local/influxdb.sh
// builds: influxd itself and InfluxData's pkg-config wrapper (which builds
// libflux, Flux's Rust library, with cargo when cgo asks pkg-config for flux).
// The build tag keeps this file out of every real build.
package tools

import (
	_ "github.com/influxdata/influxdb/v2/cmd/influxd"
	_ "github.com/influxdata/pkg-config"
)
