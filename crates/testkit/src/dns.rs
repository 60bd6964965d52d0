//! A name server for tests: answers A queries with one address (AAAA with nothing), or never
//! answers at all, on a UDP address the test chooses (loopback only).

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::thread::JoinHandle;
use std::time::Duration;

use simple_dns::{rdata, Packet, ResourceRecord, CLASS, QTYPE, TYPE};

/// A name server on `addr` that answers every A query with `answer` (or, `None`, never
/// answers), until its socket has been quiet for `quiet`. Joining gives how many queries came.
pub fn name_server(
    addr: SocketAddr,
    answer: Option<Ipv4Addr>,
    quiet: Duration,
) -> JoinHandle<usize> {
    assert!(
        addr.ip().is_loopback(),
        "test name servers live on loopback"
    );
    let sock = UdpSocket::bind(addr).expect("binding the test name server");
    sock.set_read_timeout(Some(quiet)).unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        let mut queries = 0;
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            queries += 1;
            let (Some(ip), Ok(q)) = (answer, Packet::parse(&buf[..n])) else {
                continue;
            };
            let mut r = Packet::new_reply(q.id());
            r.questions = q.questions.clone();
            if let Some(first) = q.questions.first() {
                if first.qtype == QTYPE::TYPE(TYPE::A) {
                    r.answers.push(ResourceRecord::new(
                        first.qname.clone(),
                        CLASS::IN,
                        60,
                        rdata::RData::A(rdata::A {
                            address: u32::from(ip),
                        }),
                    ));
                }
            }
            let _ = sock.send_to(&r.build_bytes_vec().unwrap(), from);
        }
        queries
    })
}
