//! brix-e2e: support code for the end-to-end tests in `tests/tests/`, which run against a real
//! Docker engine, BuildKit daemon, registry and QEMU under `cargo xtask e2e`.
