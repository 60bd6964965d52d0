//! The names openvaai keeps for itself in an export, seen alike by the daemon (which makes
//! them), the engine (which refuses them to clients) and the plugin (which reads through the
//! mount). Defined here, once.

/// The directory, directly under an export root, where the daemon keeps its private files:
/// the access file, the export's lock, the reservation journal.
pub const PRIVATE_DIR: &str = ".openvaai";

/// The prefix of the named temporaries a publish falls back to where `O_TMPFILE` is missing
/// (`.openvaai-tmp-<16 hex digits>`), removed at start if a crash left any.
pub const TEMP_PREFIX: &str = ".openvaai-tmp-";
