//! Man pages and shell completions for `openvaai` and `openvaaid`, made from their own clap
//! commands, so they can never disagree with `--help`.
//!
//! Each binary calls [`write_if_asked`] first thing in `main`: with `OPENVAAI_WRITE_MANUAL=DIR`
//! in its environment it writes its files under `DIR` and exits instead of running.
//! `cargo xtask` does that to put them into the packages and the image:
//!
//! | file | for |
//! |---|---|
//! | `DIR/man/man1/NAME.1`, `NAME-SUBCOMMAND.1` | `man NAME`, `man NAME-check` |
//! | `DIR/completions/bash/NAME` | bash-completion (`/usr/share/bash-completion/completions/`) |
//! | `DIR/completions/zsh/_NAME` | zsh (`/usr/share/zsh/vendor-completions/`) |
//! | `DIR/completions/fish/NAME.fish` | fish (`/usr/share/fish/vendor_completions.d/`) |
#![deny(unsafe_code)]

use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap_complete::Shell;

/// The environment variable that asks a binary for its manual instead of running.
pub const ENV: &str = "OPENVAAI_WRITE_MANUAL";

/// With [`ENV`] set: writes `cmd`'s man page and completions under its directory and returns
/// the exit code to end with (0, or 2 with the error on stderr). Without it: `None`.
pub fn write_if_asked(cmd: clap::Command) -> Option<ExitCode> {
    let dir = std::env::var_os(ENV)?;
    let name = cmd.get_name().to_owned();
    Some(match write(cmd, Path::new(&dir)) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "{name}: writing the manual under {}: {e}",
                Path::new(&dir).display()
            );
            ExitCode::from(2)
        }
    })
}

/// Writes the man page and the bash, zsh and fish completions of `cmd` under `dir` (see the
/// crate doc); returns the files written.
pub fn write(mut cmd: clap::Command, dir: &Path) -> io::Result<Vec<PathBuf>> {
    let name = cmd.get_name().to_owned();
    let mut written = Vec::new();
    let man = dir.join("man/man1");
    std::fs::create_dir_all(&man)?;
    // NAME.1, and NAME-SUB.1 for each subcommand.
    clap_mangen::generate_to(cmd.clone(), &man)?;
    let mut pages: Vec<PathBuf> = std::fs::read_dir(&man)?
        .map(|e| e.map(|e| e.path()))
        .collect::<io::Result<_>>()?;
    pages.retain(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n == format!("{name}.1") || n.starts_with(&format!("{name}-")))
    });
    pages.sort();
    written.extend(pages);
    for (shell, sub, file) in [
        (Shell::Bash, "bash", name.clone()),
        (Shell::Zsh, "zsh", format!("_{name}")),
        (Shell::Fish, "fish", format!("{name}.fish")),
    ] {
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut cmd, name.clone(), &mut script);
        let path = dir.join("completions").join(sub).join(file);
        put(&path, &script)?;
        written.push(path);
    }
    Ok(written)
}

fn put(path: &Path, data: &[u8]) -> io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_gets_a_man_page_and_three_completions() {
        let cmd = clap::Command::new("demo-tool")
            .about("Does demos")
            .subcommand(clap::Command::new("check").about("Checks a thing"))
            .arg(clap::Arg::new("config").long("config").value_name("FILE"));
        let dir = std::env::temp_dir().join(format!("openvaai-manual-{}", std::process::id()));
        let files = write(cmd, &dir).unwrap();
        let read = |p: &str| std::fs::read_to_string(dir.join(p)).unwrap();
        let man = read("man/man1/demo-tool.1");
        assert!(man.starts_with(".ie") || man.contains(".TH"), "{man}");
        assert!(man.contains("Does demos") && man.contains("config"));
        assert!(read("completions/bash/demo-tool").contains("check"));
        assert!(read("completions/zsh/_demo-tool").starts_with("#compdef demo-tool"));
        assert!(
            read("completions/fish/demo-tool.fish").contains("--config")
                || read("completions/fish/demo-tool.fish").contains("-l config")
        );
        assert!(read("man/man1/demo-tool-check.1").contains("Checks a thing"));
        assert_eq!(files.len(), 5, "{files:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
