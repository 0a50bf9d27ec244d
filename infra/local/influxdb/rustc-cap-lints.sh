#!/bin/sh
# RUSTC_WRAPPER used by infra/local/influxdb.sh while cargo builds libflux.
# Cargo runs "$0 /path/to/rustc ARGS...". We append --cap-lints=warn unless
# cargo already capped lints (it does for crates.io dependencies).
#
# Why not RUSTFLAGS=--cap-lints=warn: flux-core is also a *build-dependency*
# of the flux crate, and with `cargo build --target ...` (as InfluxData's
# pkg-config wrapper runs it) RUSTFLAGS does not reach host/build-dependency
# compilations. flux-core has #![deny(warnings)] under its default "strict"
# feature, and newer rustc versions raise warnings (dead_code,
# mismatched_lifetime_syntaxes) that the pinned 1.72 toolchain did not.
rustc=$1
shift
for arg in "$@"; do
    case $arg in
    --cap-lints*) exec "$rustc" "$@" ;;
    esac
done
exec "$rustc" "$@" --cap-lints=warn
