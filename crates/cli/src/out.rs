//! Standard output for every command. A reader that goes away before the output ends
//! (`openvaai status --watch | head -5`) ends the program quietly with exit code 0, as
//! `head` expects of a writer: no panic, no message. Any other failure to write (a full
//! disk under a redirection) is said on stderr and ends the program with exit code 2.

use std::io::Write;

/// Like `print!`, to standard output, flushed.
macro_rules! out {
    ($($arg:tt)*) => { $crate::out::write(format_args!($($arg)*), false) };
}

/// Like `println!`, to standard output, flushed.
macro_rules! outln {
    () => { $crate::out::write(format_args!(""), true) };
    ($($arg:tt)*) => { $crate::out::write(format_args!($($arg)*), true) };
}

pub(crate) use {out, outln};

/// Writes `args` (and a newline when `line`) and flushes, or ends the program as the module
/// says.
pub fn write(args: std::fmt::Arguments, line: bool) {
    let mut o = std::io::stdout().lock();
    let r = o
        .write_fmt(args)
        .and_then(|()| if line { o.write_all(b"\n") } else { Ok(()) })
        .and_then(|()| o.flush());
    if let Err(e) = r {
        exit_on(&e);
    }
}

/// Whether `err` is, or was caused by, a reader that went away.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<serde_json::Error>()
                .and_then(|e| e.io_error_kind())
                .is_some_and(|k| k == std::io::ErrorKind::BrokenPipe)
    })
}

fn exit_on(e: &std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(i32::from(crate::exit::OK));
    }
    eprintln!("openvaai: writing to standard output: {e}");
    std::process::exit(i32::from(crate::exit::USAGE));
}
