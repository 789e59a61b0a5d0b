//! Where things live inside a guest, for the image builder and the scripts.

/// Where workload binaries live in the guest (same path on every kernel, as
/// CRIU restores executables by path).
pub const WORKLOAD_BIN_DIR: &str = "/opt/crtest/bin";

/// The page digest helper the CRIU action script runs (see `memcheck`),
/// outside the workload directory so no workload name can shadow it.
pub const MEMDIGEST: &str = "/opt/crtest/libexec/memdigest";

/// Where the guest image keeps the engine's environment (`KEY=VALUE` lines).
pub const ENV_FILE: &str = "etc/crtest/engine.env";
