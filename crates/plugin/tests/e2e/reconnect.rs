//! A connection dropped in the middle of a job: the plugin reconnects and keeps following
//! the job (job IDs outlive connections) within the session timeout.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use openvaai_abi::vix;
use openvaai_host::Progress;
use openvaai_testkit::{assert_same_content, write_layout, FsKind, Run};

use crate::util::*;

/// A TCP relay to the daemon whose live connections the test can cut at will.
struct Relay {
    port: u16,
    live: Arc<Mutex<Vec<TcpStream>>>,
    accepted: Arc<Mutex<usize>>,
    stop: Arc<AtomicBool>,
}

impl Relay {
    fn start(to: std::net::SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let live = Arc::new(Mutex::new(Vec::new()));
        let accepted = Arc::new(Mutex::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (l, a, st) = (live.clone(), accepted.clone(), stop.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(to) else {
                    continue;
                };
                *a.lock().unwrap() += 1;
                l.lock().unwrap().push(client.try_clone().unwrap());
                l.lock().unwrap().push(server.try_clone().unwrap());
                pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
                pipe(server, client);
            }
        });
        Relay {
            port,
            live,
            accepted,
            stop,
        }
    }

    /// Breaks every connection relayed so far.
    fn cut(&self) {
        for s in self.live.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.cut();
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 << 10];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Both);
    });
}

#[test]
fn a_connection_dropped_mid_clone_is_reestablished_and_the_clone_completes() {
    // Paced, so that the clone is still running when the connection is cut.
    let limits = "max_job_bytes_per_second = 134217728";
    let Some(env) = Env::build(&[(FsKind::Xfs, 1)], limits, Some(5000)) else {
        return;
    };
    write_layout(&env.path(0, "big.vmdk"), &[Run::Data(384 * MIB)], 60).unwrap();

    // The datastore as the plugin sees it, reached through the relay: a mount point whose
    // access file names the relay's port.
    let relay = Relay::start(env.daemon.addr());
    let mount = tempfile::tempdir().unwrap();
    let access = openvaai_testkit::access_path(mount.path());
    std::fs::create_dir_all(access.parent().unwrap()).unwrap();
    let mut a = env.daemon.access(0);
    a.port = relay.port;
    std::fs::write(&access, a.render()).unwrap();
    let mut ds = datastore(&env.exports[0]);
    ds.local_mount_point = Some(mount.path().to_str().unwrap().into());
    let id = env.plugin.start_session(&ds, Some(5000)).unwrap();

    let mut deltas = Vec::new();
    let mut cb = |d: u64| {
        deltas.push(d);
        if deltas.len() == 2 {
            relay.cut();
        }
        true
    };
    let m = mount.path().to_str().unwrap();
    let status = env
        .plugin
        .clone_file(
            id,
            &format!("{m}/big.vmdk"),
            &format!("{m}/copy.vmdk"),
            0,
            None,
            Some(Progress {
                update_bytes: 16 * MIB,
                callback: &mut cb,
            }),
        )
        .unwrap();
    assert_vix(status, vix::OK);
    assert!(
        deltas.len() > 2,
        "the clone went on after the cut: {deltas:?}"
    );
    assert_eq!(deltas.iter().sum::<u64>(), 384 * MIB);
    assert!(
        *relay.accepted.lock().unwrap() >= 2,
        "the plugin reconnected"
    );
    assert_same_content(&env.path(0, "big.vmdk"), &env.path(0, "copy.vmdk"));
    assert_eq!(env.listing(0), ["big.vmdk", "copy.vmdk"]);
}
