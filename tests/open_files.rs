//! The open-file limit: sigil raises its soft limit to the hard one at start, so a soft limit
//! far below `--max-connections` (1,024 is common) does not leave connections waiting.
//! Its own test binary: it lowers the test process's soft limit while sigil starts.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use support::Sigil;

fn limits() -> libc::rlimit {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    lim
}

fn set_soft(soft: libc::rlim_t) {
    let lim = libc::rlimit {
        rlim_cur: soft,
        rlim_max: limits().rlim_max,
    };
    // SAFETY: setrlimit only reads the struct it is given.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
}

#[test]
fn a_low_soft_open_file_limit_is_raised_and_every_connection_served() {
    const CONNECTIONS: usize = 400;
    let hard = limits().rlim_max;
    assert!(
        hard as usize > 2 * CONNECTIONS + 64,
        "this test needs a hard open-file limit over {}",
        2 * CONNECTIONS + 64
    );
    // sigil inherits a soft limit of 128 descriptors; the test process gets its own back.
    set_soft(128);
    let sigil = Sigil::start();
    set_soft(hard);

    let proc_limits =
        std::fs::read_to_string(format!("/proc/{}/limits", sigil.pid())).expect("limits");
    let open_files: Vec<&str> = proc_limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("Max open files")
        .split_whitespace()
        .collect();
    assert_eq!(
        open_files[3], open_files[4],
        "soft raised to hard: {open_files:?}"
    );

    // All at once, past 128: each is accepted and answered.
    let mut conns: Vec<TcpStream> = (0..CONNECTIONS)
        .map(|i| TcpStream::connect(sigil.http).unwrap_or_else(|e| panic!("connect {i}: {e}")))
        .collect();
    for s in &mut conns {
        s.write_all(b"GET / HTTP/1.1\r\nHost: nobody.localhost\r\n\r\n")
            .expect("request");
    }
    for (i, s) in conns.iter_mut().enumerate() {
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut buf = [0u8; 64];
        let n = s
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("connection {i} is answered: {e}"));
        assert!(buf[..n].starts_with(b"HTTP/1.1 404"), "connection {i}");
    }
}
