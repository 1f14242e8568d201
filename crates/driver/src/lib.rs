//! brix-driver: builders and the drivers that boot and connect to their BuildKit daemons
//! (docker-container, docker, remote), the builder store, and QEMU/binfmt management.

pub mod binfmt;
