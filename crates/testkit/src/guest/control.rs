//! The control channel: a shell script sent to the guest's `nc -ll -e guest-ctl` on a
//! forwarded port, as one line of base64; its output and exit status read back to EOF.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// What a script printed (stdout and stderr) and its exit status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output {
    pub status: i32,
    pub text: String,
}

const EXIT_MARK: &str = "@@exit=";

fn base64(data: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Runs `script` in the guest, bounded by `timeout` (connection and reply). The connection
/// is retried until the deadline: user networking accepts on the host before the guest
/// side answers, and a request the guest never saw just closes.
pub fn exec(ctl: SocketAddr, script: &str, timeout: Duration) -> Result<Output, String> {
    let deadline = Instant::now() + timeout;
    let mut last = String::from("no attempt");
    while Instant::now() < deadline {
        match once(ctl, script, deadline) {
            Ok(Some(out)) => return Ok(out),
            Ok(None) => last = "the guest closed the connection without a reply".into(),
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!(
        "control request not answered within {timeout:?} ({last}): {script}"
    ))
}

fn once(ctl: SocketAddr, script: &str, deadline: Instant) -> Result<Option<Output>, String> {
    let left = |d: Instant| {
        d.saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    };
    let mut s = TcpStream::connect_timeout(&ctl, left(deadline)).map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(left(deadline)))
        .map_err(|e| e.to_string())?;
    let line = format!("{}\n", base64(script.as_bytes()));
    s.write_all(line.as_bytes()).map_err(|e| e.to_string())?;
    let _ = s.shutdown(Shutdown::Write);
    let mut text = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        s.set_read_timeout(Some(left(deadline)))
            .map_err(|e| e.to_string())?;
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => text.extend_from_slice(&buf[..n]),
            Err(e) if Instant::now() >= deadline => {
                return Err(format!(
                    "{e} after {} bytes of output: {}",
                    text.len(),
                    String::from_utf8_lossy(&text)
                ))
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    let text = String::from_utf8_lossy(&text).into_owned();
    let Some(at) = text.rfind(EXIT_MARK) else {
        return if text.is_empty() {
            Ok(None)
        } else {
            Err(format!("reply without an exit status: {text}"))
        };
    };
    let status = text[at + EXIT_MARK.len()..]
        .trim()
        .parse()
        .map_err(|_| format!("bad exit status in: {text}"))?;
    Ok(Some(Output {
        status,
        text: text[..at].to_owned(),
    }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_pads_like_rfc4648() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(super::base64(input.as_bytes()), want);
        }
    }
}
