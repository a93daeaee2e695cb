//! Kernel TLS (`--ktls`). `kernel_tls` runs where it is started: on a kernel without TLS (this
//! project's CI machines: `CONFIG_TLS` unset) sigil must say so and serve HTTPS with rustls; on
//! a kernel with it, HTTPS/1.1 connections must be handed to the kernel and serve the same
//! bytes. `kernel_tls_in_a_vm` runs `kernel_tls` in a QEMU VM booting Debian's kernel, which
//! has TLS (tests/vm/: `kit.sh` fetches it, `boot.sh` boots it on this machine's files).

mod support;

use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::Duration;

use support::Sigil;

/// Set in the VM: there the kernel has TLS, so falling back to rustls is a failure.
const IN_VM: &str = "SIGIL_TEST_KERNEL_TLS_VM";

/// Whether this kernel takes the TLS upper-layer protocol on a TCP socket.
fn kernel_has_tls() -> bool {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    let socket =
        std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
    // SAFETY: setsockopt on a socket this function owns, with a 3-byte value it passes.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_TCP,
            libc::TCP_ULP,
            b"tls".as_ptr().cast(),
            3,
        )
    };
    rc == 0
}

fn client(domain: &str, sigil: &Sigil, tls12: bool) -> reqwest::blocking::Client {
    let ca = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/certs/ca.pem")).expect("ca");
    let mut b = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("pem"))
        .http1_only()
        .no_gzip()
        .no_brotli()
        .timeout(Duration::from_secs(120))
        .resolve(domain, sigil.https);
    if tls12 {
        b = b.max_tls_version(reqwest::tls::Version::TLS_1_2);
    }
    b.build().expect("client")
}

#[test]
fn kernel_tls() {
    let kernel = kernel_has_tls();
    if std::env::var_os(IN_VM).is_some() {
        assert!(kernel, "the VM's kernel has TLS");
    }
    let small: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
    let large: Vec<u8> = (0..(3u32 << 20)).map(|i| (i * 31 % 253) as u8).collect();
    // Bodies of 64 KiB and more leave through sendfile where the socket allows it.
    let sigil = Sigil::start_with(&["--ktls", "--sendfile-from", "65536"]);
    let said = sigil
        .banner
        .iter()
        .find(|l| l.starts_with("sigil: kernel TLS"))
        .expect("sigil says whether the kernel takes TLS");
    assert_eq!(
        said.starts_with("sigil: kernel TLS for HTTPS/1.1 (TLS13_AES_128_GCM_SHA256"),
        kernel,
        "{said}"
    );
    if !kernel {
        assert!(said.contains("unavailable"), "{said}");
    }
    let octets = "application/octet-stream";
    let site = sigil.client().deploy_site(
        "ktls",
        &[
            ("/small.bin", "public", &small, octets),
            ("/large.bin", "public", &large, octets),
        ],
    );
    let d = site.domain.as_str();
    let edge = sigil.edge(&[d]);
    for tls12 in [false, true] {
        let h1 = client(d, &sigil, tls12);
        // Several requests on one connection: the fast path's writes, sendfile, a range, and a
        // POST, which hyper serves on the same (handed-over) connection.
        for _ in 0..2 {
            let r = edge.send(h1.get(edge.tls_url(d, "/small.bin"))).expect(200);
            assert_eq!(r.version, reqwest::Version::HTTP_11);
            assert!(r.body == small, "small body differs (TLS 1.2: {tls12})");
            let r = edge.send(h1.get(edge.tls_url(d, "/large.bin"))).expect(200);
            assert!(r.body == large, "large body differs (TLS 1.2: {tls12})");
        }
        let r = edge
            .send(
                h1.get(edge.tls_url(d, "/large.bin"))
                    .header("range", "bytes=1000000-1999999"),
            )
            .expect(206);
        assert!(r.body == large[1_000_000..2_000_000], "range differs");
        let r = edge
            .send(
                h1.post(edge.tls_url(d, "/small.bin"))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body("From=%2B14155550100&Body=hi"),
            )
            .expect(200);
        assert!(r.body == small, "POST body differs");
    }
    // HTTP/2 (ALPN) stays with rustls.
    let r = edge.get(&edge.tls_url(d, "/large.bin"), &[]).expect(200);
    assert_eq!(r.version, reqwest::Version::HTTP_2);
    assert!(r.body == large, "HTTP/2 body differs");

    let handed = sigil.metric("sigil_kernel_tls_connections_total");
    let from_file = sigil.metric("sigil_sendfile_bytes_total");
    println!("kernel TLS: {handed} connections handed over, {from_file} bytes sent from files");
    if kernel {
        // One connection per client (TLS 1.3, then 1.2), kept alive throughout.
        assert_eq!(handed, 2);
        assert!(from_file >= 2 * 2 * large.len() as u64, "{from_file}");
    } else {
        assert_eq!(handed, 0);
        assert_eq!(from_file, 0);
    }
}

/// A record type set on what kernel TLS sends next (linux/tls.h; the libc crate lacks it).
const TLS_SET_RECORD_TYPE: libc::c_int = 1;

/// Sends `payload` as one TLS record of type `kind` on a socket the kernel encrypts.
fn send_record(fd: std::os::fd::RawFd, kind: u8, payload: &[u8]) {
    // SAFETY: a msghdr over a buffer and a control buffer this function owns, sized with
    // CMSG_SPACE for the one byte it carries.
    let sent = unsafe {
        let space = libc::CMSG_SPACE(1) as usize;
        let mut control = vec![0u8; space];
        let mut iov = libc::iovec {
            iov_base: payload.as_ptr() as *mut libc::c_void,
            iov_len: payload.len(),
        };
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_TLS;
        (*cmsg).cmsg_type = TLS_SET_RECORD_TYPE;
        (*cmsg).cmsg_len = libc::CMSG_LEN(1) as _;
        *libc::CMSG_DATA(cmsg) = kind;
        libc::sendmsg(fd, &msg, 0)
    };
    assert_eq!(
        sent,
        payload.len() as isize,
        "{}",
        std::io::Error::last_os_error()
    );
}

/// A client with kernel TLS of its own sends what no HTTP client sends after the handshake:
/// a change_cipher_spec record, a handshake message, an alert. Each ends its connection and
/// nothing else: no panic in sigil's log, and the next connection is served.
#[test]
fn records_after_the_handshake_end_the_connection() {
    if !kernel_has_tls() {
        assert!(std::env::var_os(IN_VM).is_none(), "the VM's kernel has TLS");
        // Without kernel TLS on this side there is no way to send them; the VM runs it.
        return;
    }
    use rustls::pki_types::pem::PemObject;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    let log = dir.path().join("stderr");
    let mut cmd = Sigil::command(&data, &["--ktls"]);
    cmd.env("SIGIL_ACCOUNT_SID", support::ACCOUNT_SID)
        .env("SIGIL_AUTH_TOKEN", support::AUTH_TOKEN)
        .stderr(std::fs::File::create(&log).expect("log"));
    let sigil = Sigil::spawn_command(cmd, &data);
    let site = sigil
        .client()
        .deploy_site("records", &[("/a.txt", "public", b"abc", "text/plain")]);
    let ca = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/certs/ca.pem")).expect("ca");
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&ca) {
        roots.add(cert.expect("pem")).expect("ca");
    }
    let mut config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.enable_secret_extraction = true;
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let request = format!("GET /a.txt HTTP/1.1\r\nHost: {}\r\n\r\n", site.domain);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // change_cipher_spec, a handshake message (a KeyUpdate), then a close_notify alert.
    for (kind, payload) in [(20u8, &[1u8][..]), (22, &[24, 0, 0, 1, 0]), (21, &[1, 0])] {
        runtime.block_on(async {
            let tcp = tokio::net::TcpStream::connect(sigil.https)
                .await
                .expect("connect");
            let name = rustls::pki_types::ServerName::try_from(site.domain.clone()).expect("name");
            let tls = connector
                .connect(name, ktls::CorkStream::new(tcp))
                .await
                .expect("handshake");
            let mut conn = ktls::config_ktls_client(tls)
                .await
                .expect("client kernel TLS");
            // Served on the handed-over connection first.
            conn.write_all(request.as_bytes()).await.expect("request");
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            while !got.ends_with(b"abc") {
                let n = conn.read(&mut buf).await.expect("response");
                assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
                got.extend_from_slice(&buf[..n]);
            }
            assert!(got.starts_with(b"HTTP/1.1 200 OK\r\n"));
            send_record(conn.as_raw_fd(), kind, payload);
            // Then sigil closes the connection (an answer to the request after it never comes).
            let _ = conn.write_all(request.as_bytes()).await;
            let end = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf)).await;
            assert!(
                matches!(end, Ok(Ok(0)) | Ok(Err(_))),
                "record type {kind}: the connection went on: {end:?}"
            );
        });
    }
    // The server went on serving.
    let edge = sigil.edge(&[&site.domain]);
    let r = edge
        .get(&edge.tls_url(&site.domain, "/a.txt"), &[])
        .expect(200);
    assert_eq!(r.body, b"abc");
    assert_eq!(sigil.metric("sigil_kernel_tls_connections_total"), 3);
    drop(sigil);
    let log = std::fs::read_to_string(&log).expect("log");
    assert!(!log.contains("panicked"), "{log}");
}

/// The kit tests/vm/kit.sh prepares (`.ci/run` runs it).
fn vm_kit() -> std::path::PathBuf {
    let root = std::env::var_os("SIGIL_VM_KIT").map_or_else(
        || {
            let home = std::env::var_os("HOME").expect("HOME");
            Path::new(&home).join(".cache/sigil-vm")
        },
        Into::into,
    );
    let kit = root.join("current");
    assert!(
        kit.join("boot").is_dir(),
        "no VM kit at {}: run tests/vm/kit.sh (.ci/run does)",
        kit.display()
    );
    kit
}

#[test]
fn kernel_tls_in_a_vm() {
    // No VM inside the VM; and one boot per suite: the shared-stores pass has nothing to add
    // (the guest runs on the embedded stores).
    if std::env::var_os(IN_VM).is_some() || support::on_shared_stores() {
        return;
    }
    let kit = vm_kit();
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let out = tempfile::tempdir_in(tmp).expect("dir");
    let test = std::env::current_exe().expect("this test's executable");
    // The guest runs the two tests above alone, as root, on the embedded stores (it has no network).
    let script = format!(
        "export HOME=/run/home TMPDIR=/run/tmp {IN_VM}=1 PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin\n\
         unset SIGIL_TEST_STORES\n\
         cd {manifest}\n\
         exec {test} --exact --test-threads 1 --nocapture \
         kernel_tls records_after_the_handshake_end_the_connection\n",
        manifest = env!("CARGO_MANIFEST_DIR"),
        test = test.display(),
    );
    std::fs::write(out.path().join("guest.sh"), script).expect("guest script");
    let boot = std::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vm/boot.sh"))
        .arg(&kit)
        .arg(tmp)
        .arg(out.path())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("boot.sh runs");
    let log = std::fs::read_to_string(out.path().join("guest.log")).unwrap_or_default();
    let rc = std::fs::read_to_string(out.path().join("rc")).unwrap_or_default();
    assert_eq!(
        rc.trim(),
        "0",
        "the test failed in the VM (boot.sh: {}):\n{log}\nconsole:\n{}",
        boot.status,
        String::from_utf8_lossy(&boot.stdout)
    );
    assert!(
        log.contains("kernel TLS: 2 connections handed over"),
        "{log}"
    );
    assert!(log.contains("test result: ok. 2 passed"), "{log}");
}
