//! The `openvaai` binary: every command against the real plugin library and, where it needs
//! one, a real openvaaid on a loop-mounted XFS.

mod admin;
mod advice;
mod commands;
mod demo;
mod manual;
mod pipes;
mod plugin_info;
mod util;
mod vmdk;
