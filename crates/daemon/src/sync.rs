//! Locking the daemon's mutexes.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, poisoned or not: a panic while holding one of the daemon's locks leaves plain
/// data behind (counters, maps updated by single calls), so serving goes on.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
