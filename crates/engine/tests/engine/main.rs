//! Integration tests of the engine on real XFS, Btrfs and ext4 images (loop-mounted; root
//! needed, see `openvaai-testkit`).

#[macro_use]
mod util;

mod caps;
mod cleanup;
mod clone_modes;
mod cross_export;
mod direct;
mod failures;
mod layouts;
mod no_fiemap;
mod paths;
mod publish;
mod reserve_statx;
mod reserve_undo;
mod resume;
mod same_file;
mod sides;
mod staged;
