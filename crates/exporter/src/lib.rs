//! brix-exporter: OCI image index and manifest assembly, OCI layout tarballs, and registry
//! push and inspect.
