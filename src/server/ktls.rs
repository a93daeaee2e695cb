//! Kernel TLS (`--ktls`): once rustls has completed the handshake of an HTTPS/1.1 connection,
//! its traffic keys go to the kernel (`TCP_ULP` "tls", then `TLS_TX` and `TLS_RX`) and the
//! socket is read and written as if it were plain TCP: the kernel encrypts and decrypts the
//! records. The fast path's writes then cost no encryption in user space, and a body the cache
//! marked for `sendfile` leaves through it, as on plain HTTP.
//!
//! The handshake is read through a [`Cork`], which hands rustls one record at a time, so when
//! the handshake is done rustls holds no part of a record it has not decrypted: what it did
//! decrypt is drained and served first ([`KernelStream`]), and the kernel's record sequence
//! starts where rustls's ended. Any record after the hand-over that is not application data
//! ends the connection. The `ktls` crate contributes the layout of the keys for the kernel and
//! the `close_notify` sent on shutdown; its record reader and reading wrapper are not used
//! (both panic on input a client can send), nor its probe (which listens on every address and
//! sets keys for sending only).
//!
//! Which suites the kernel takes, for sending and for receiving, is probed at start on a
//! loopback connection. A connection whose suite it does not take, and every one that chose HTTP/2
//! by ALPN (whose frames are written in user space anyway), stays with rustls; so does every
//! connection where the kernel has no TLS (`CONFIG_TLS` unset, or the `tls` module not loaded
//! and sigil not allowed to load it: `setsockopt(TCP_ULP, "tls")` fails with ENOENT), and sigil
//! says so at start.

use std::io;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, TlsGetRecordType};
use rustls::SupportedCipherSuite;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use ktls::KtlsStream;

/// `SOL_TLS` socket options (linux/tls.h): the keys for sending and for receiving.
const TLS_TX: libc::c_int = 1;
const TLS_RX: libc::c_int = 2;

/// Reads a TLS connection for rustls one record at a time: a read returns at most the rest of
/// the current record's header or payload. Once [`Cork::stop`] is called, a read at a record
/// boundary returns nothing (what rustls takes for the end of input), so that draining rustls
/// afterwards never consumes a byte of a record it cannot finish. [`Cork::release`] makes it
/// pass reads through (a connection that stays with rustls).
pub struct Cork<IO> {
    io: IO,
    /// The current record's header: how much of it has been read, and given out.
    header: [u8; 5],
    header_read: usize,
    header_given: usize,
    /// Payload bytes of the current record not yet read.
    payload_left: usize,
    stopped: bool,
    released: bool,
}

impl<IO> Cork<IO> {
    /// Reads `io` record by record.
    pub fn new(io: IO) -> Cork<IO> {
        Cork {
            io,
            header: [0; 5],
            header_read: 0,
            header_given: 0,
            payload_left: 0,
            stopped: false,
            released: false,
        }
    }

    /// Ends input at the next record boundary.
    fn stop(&mut self) {
        self.stopped = true;
    }

    /// Passes every read through from now on.
    pub fn release(&mut self) {
        self.released = true;
    }

    /// The connection it reads.
    pub fn get_ref(&self) -> &IO {
        &self.io
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Cork<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.released {
            return Pin::new(&mut this.io).poll_read(cx, buf);
        }
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        if this.header_given < 5 {
            if this.header_read == 0 && this.stopped {
                return Poll::Ready(Ok(()));
            }
            while this.header_read < 5 {
                let mut rest = ReadBuf::new(&mut this.header[this.header_read..]);
                ready!(Pin::new(&mut this.io).poll_read(cx, &mut rest))?;
                let n = rest.filled().len();
                if n == 0 {
                    // The end, inside a header: rustls gets what there was, then the end.
                    this.released = true;
                    buf.put_slice(&this.header[..this.header_read]);
                    return Poll::Ready(Ok(()));
                }
                this.header_read += n;
            }
            if this.header_given == 0 {
                this.payload_left =
                    usize::from(u16::from_be_bytes([this.header[3], this.header[4]]));
            }
            let n = buf.remaining().min(5 - this.header_given);
            buf.put_slice(&this.header[this.header_given..this.header_given + n]);
            this.header_given += n;
            if this.header_given == 5 && this.payload_left == 0 {
                this.header_read = 0;
                this.header_given = 0;
            }
            return Poll::Ready(Ok(()));
        }
        let mut part = buf.take(this.payload_left);
        ready!(Pin::new(&mut this.io).poll_read(cx, &mut part))?;
        let n = part.filled().len();
        // SAFETY: `part` borrowed `buf`'s unfilled part, and the reader initialised and filled
        // its first `n` bytes.
        unsafe { buf.assume_init(n) };
        buf.advance(n);
        if n == 0 {
            this.released = true; // the end, inside a record: rustls reports it
        }
        this.payload_left -= n;
        if this.payload_left == 0 {
            this.header_read = 0;
            this.header_given = 0;
        }
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Cork<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Hands a connection whose handshake rustls completed through a [`Cork`] to the kernel:
/// drains what rustls decrypted, takes its traffic keys and sequence numbers, and sets them
/// on the socket. A failure leaves the connection unusable (its keys are out of rustls).
pub async fn hand_over(
    mut tls: tokio_rustls::server::TlsStream<Cork<TcpStream>>,
) -> io::Result<KernelStream> {
    tls.get_mut().0.stop();
    let mut drained = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match tls.read(&mut chunk).await {
            Ok(0) => break,
            Ok(n) => drained.extend_from_slice(&chunk[..n]),
            // The Cork's end of input, without a close_notify.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        }
    }
    let (cork, session) = tls.into_inner();
    let socket = cork.io;
    let suite = session
        .negotiated_cipher_suite()
        .ok_or_else(|| io::Error::other("no cipher suite after the handshake"))?;
    let secrets = session
        .dangerous_extract_secrets()
        .map_err(io::Error::other)?;
    let tx = ktls::CryptoInfo::from_rustls(suite, secrets.tx).map_err(io::Error::other)?;
    let rx = ktls::CryptoInfo::from_rustls(suite, secrets.rx).map_err(io::Error::other)?;
    set_keys(socket.as_raw_fd(), &tx, &rx)?;
    Ok(KernelStream {
        inner: KtlsStream::new(socket, None),
        drained: (!drained.is_empty()).then_some((drained, 0)),
        ended: false,
    })
}

fn setsockopt(
    fd: std::os::fd::RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: *const libc::c_void,
    len: usize,
) -> io::Result<()> {
    // SAFETY: `value` points to `len` readable bytes (a constant, or a `CryptoInfo` that
    // outlives the call), and the kernel copies them.
    let rc = unsafe { libc::setsockopt(fd, level, name, value, len as libc::socklen_t) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The suites whose keys the `ktls` crate lays out for the kernel (TLS 1.2 only with ECDSA
/// certificates: the crate maps no other).
const SUITES: [SupportedCipherSuite; 6] = {
    use rustls::crypto::ring::cipher_suite::*;
    [
        TLS13_AES_128_GCM_SHA256,
        TLS13_AES_256_GCM_SHA384,
        TLS13_CHACHA20_POLY1305_SHA256,
        TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ]
};

/// The cipher suites this kernel encrypts and decrypts.
pub struct KernelTls(Vec<SupportedCipherSuite>);

impl KernelTls {
    /// Probes the kernel: for each suite, keys for both directions set on a connection over
    /// loopback. `Err` says why no connection can be handed over.
    pub fn probe() -> Result<KernelTls, String> {
        let mut takes = Vec::new();
        let mut refused = None;
        for suite in SUITES {
            match probe(suite) {
                Ok(()) => takes.push(suite),
                Err(e) => refused = Some(e),
            }
        }
        match refused {
            Some(e) if takes.is_empty() => Err(format!(
                "{e}: this kernel has no TLS (CONFIG_TLS), its tls module is not loaded \
                 (modprobe tls), or it takes none of the cipher suites"
            )),
            _ => Ok(KernelTls(takes)),
        }
    }

    /// Whether the kernel takes a connection that negotiated `suite`.
    pub fn takes(&self, suite: SupportedCipherSuite) -> bool {
        self.0.contains(&suite)
    }

    /// The suites it takes, for the start-up line.
    pub fn suites(&self) -> Vec<String> {
        self.0.iter().map(|s| format!("{:?}", s.suite())).collect()
    }
}

/// Sets zero keys of `suite` for sending and receiving on a fresh loopback connection.
fn probe(suite: SupportedCipherSuite) -> io::Result<()> {
    use ktls::{CryptoInfo, KtlsCipherType};
    use ktls_sys::bindings as sys;
    let kind = ktls::KtlsCipherSuite::try_from(suite).map_err(io::Error::other)?;
    let info = |cipher: u32| sys::tls_crypto_info {
        version: match suite {
            SupportedCipherSuite::Tls12(_) => 0x0303,
            SupportedCipherSuite::Tls13(_) => 0x0304,
        },
        cipher_type: cipher as u16,
    };
    let keys = match kind.typ {
        KtlsCipherType::AesGcm128 => CryptoInfo::AesGcm128(sys::tls12_crypto_info_aes_gcm_128 {
            info: info(sys::TLS_CIPHER_AES_GCM_128),
            iv: Default::default(),
            key: Default::default(),
            salt: Default::default(),
            rec_seq: Default::default(),
        }),
        KtlsCipherType::AesGcm256 => CryptoInfo::AesGcm256(sys::tls12_crypto_info_aes_gcm_256 {
            info: info(sys::TLS_CIPHER_AES_GCM_256),
            iv: Default::default(),
            key: Default::default(),
            salt: Default::default(),
            rec_seq: Default::default(),
        }),
        KtlsCipherType::Chacha20Poly1305 => {
            CryptoInfo::Chacha20Poly1305(sys::tls12_crypto_info_chacha20_poly1305 {
                info: info(sys::TLS_CIPHER_CHACHA20_POLY1305),
                iv: Default::default(),
                key: Default::default(),
                salt: Default::default(),
                rec_seq: Default::default(),
            })
        }
        _ => {
            return Err(io::Error::other(
                "a cipher the kernel has no keys layout for",
            ))
        }
    };
    let listener = std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))?;
    let socket = std::net::TcpStream::connect(listener.local_addr()?)?;
    let _peer = listener.accept()?;
    set_keys(socket.as_raw_fd(), &keys, &keys)
}

/// Makes `fd` a kernel-TLS socket with these keys for sending (`tx`) and receiving (`rx`).
fn set_keys(
    fd: std::os::fd::RawFd,
    tx: &ktls::CryptoInfo,
    rx: &ktls::CryptoInfo,
) -> io::Result<()> {
    setsockopt(fd, libc::SOL_TCP, libc::TCP_ULP, b"tls".as_ptr().cast(), 3)?;
    setsockopt(fd, libc::SOL_TLS, TLS_TX, tx.as_ptr(), tx.size())?;
    setsockopt(fd, libc::SOL_TLS, TLS_RX, rx.as_ptr(), rx.size())
}

/// An HTTPS/1.1 connection the kernel encrypts. Reads serve what rustls had decrypted before
/// the hand-over, then the socket's application data. Any other record — an alert, a
/// post-handshake message the kernel cannot act on (a KeyUpdate), a change_cipher_spec — ends
/// the connection: an alert as the end of the client's input, anything else as an error.
/// (The `ktls` crate's own reader panics on a change_cipher_spec record, which a client can
/// send; this one never calls it.) The `close_notify` on shutdown is the crate's.
pub struct KernelStream {
    inner: KtlsStream<TcpStream>,
    drained: Option<(Vec<u8>, usize)>,
    ended: bool,
}

impl KernelStream {
    /// The TCP socket: what is written to it, or sent from a file, the kernel encrypts.
    pub fn socket(&self) -> &TcpStream {
        self.inner.get_ref()
    }
}

impl AsyncRead for KernelStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some((drained, at)) = &mut this.drained {
            let n = buf.remaining().min(drained.len() - *at);
            buf.put_slice(&drained[*at..*at + n]);
            *at += n;
            if *at == drained.len() {
                this.drained = None;
            }
            return Poll::Ready(Ok(()));
        }
        if this.ended {
            return Poll::Ready(Ok(()));
        }
        let socket = this.inner.get_mut();
        match ready!(Pin::new(&mut *socket).poll_read(cx, buf)) {
            // The kernel refuses a plain read of a record that is not application data.
            Err(e) if e.raw_os_error() == Some(libc::EIO) => match record_type(socket)? {
                TlsGetRecordType::Alert => {
                    this.ended = true;
                    Poll::Ready(Ok(()))
                }
                other => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("a {other:?} record after the handshake"),
                ))),
            },
            done => Poll::Ready(done),
        }
    }
}

/// Reads the record waiting on `socket` that is not application data, returning its type.
fn record_type(socket: &TcpStream) -> io::Result<TlsGetRecordType> {
    // A record is at most 16 KiB of plaintext; what it says is not used.
    let mut body = vec![0u8; 16 * 1024];
    let mut iov = [io::IoSliceMut::new(&mut body)];
    let mut control = nix::cmsg_space!(u8);
    let msg = recvmsg::<()>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut control),
        MsgFlags::MSG_DONTWAIT,
    )?;
    for cmsg in msg.cmsgs()? {
        if let ControlMessageOwned::TlsGetRecordType(kind) = cmsg {
            return Ok(kind);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "the kernel gave no TLS record type",
    ))
}

impl AsyncWrite for KernelStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // Straight to the socket: the crate's stream writes one buffer at a time.
        Pin::new(self.inner.get_mut()).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three records: a handshake one, an empty one, an application-data one.
    const RECORDS: &[u8] = &[
        22, 3, 3, 0, 3, 1, 2, 3, 23, 3, 3, 0, 0, 23, 3, 3, 0, 2, 4, 5,
    ];
    const ENDS: [usize; 3] = [8, 13, 20];

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
    }

    /// Reads through a Cork with buffers of every size from 1 to 7 bytes: what comes out is
    /// the input, no read crosses a record's end, and the end of input ends reading.
    #[test]
    fn a_cork_never_reads_across_a_record() {
        rt().block_on(async {
            for size in 1..=7 {
                let mut cork = Cork::new(RECORDS);
                let (mut out, mut buf) = (Vec::new(), vec![0u8; size]);
                loop {
                    let n = cork.read(&mut buf).await.expect("read");
                    if n == 0 {
                        break;
                    }
                    let (from, to) = (out.len(), out.len() + n);
                    assert!(
                        ENDS.iter().all(|&end| !(from < end && end < to)),
                        "buffer {size}: {from}..{to} crosses a record's end"
                    );
                    out.extend_from_slice(&buf[..n]);
                }
                assert_eq!(out, RECORDS, "buffer {size}");
            }
        });
    }

    /// Stopped, a Cork ends input at the next record boundary: at once when it is at one,
    /// else after the rest of the current record.
    #[test]
    fn a_stopped_cork_ends_at_the_next_boundary() {
        rt().block_on(async {
            for (read_first, want) in [(0, 0), (8, 8), (3, 8), (6, 8), (9, 13), (14, 20)] {
                let mut cork = Cork::new(RECORDS);
                let mut first = vec![0u8; read_first];
                let mut got = 0;
                while got < read_first {
                    got += cork.read(&mut first[got..]).await.expect("read");
                }
                cork.stop();
                let mut rest = Vec::new();
                cork.read_to_end(&mut rest).await.expect("read");
                assert_eq!(read_first + rest.len(), want, "stopped after {read_first}");
            }
        });
    }

    /// Input that ends inside a header or a payload is given as it is, then its end.
    #[test]
    fn a_cork_passes_a_cut_record_on() {
        rt().block_on(async {
            for cut in [3, 6] {
                let mut out = Vec::new();
                Cork::new(&RECORDS[..cut])
                    .read_to_end(&mut out)
                    .await
                    .expect("read");
                assert_eq!(out, &RECORDS[..cut]);
            }
        });
    }

    /// What rustls decrypted before the hand-over comes first, in any buffer size, then the
    /// socket.
    #[test]
    fn a_kernel_stream_serves_the_drained_bytes_first() {
        use tokio::io::AsyncWriteExt;
        tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .expect("runtime")
            .block_on(async {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                let mut peer = TcpStream::connect(listener.local_addr().expect("addr"))
                    .await
                    .expect("connect");
                let (socket, _) = listener.accept().await.expect("accept");
                let mut stream = KernelStream {
                    inner: KtlsStream::new(socket, None),
                    drained: Some((b"GET / HT".to_vec(), 0)),
                    ended: false,
                };
                peer.write_all(b"TP/1.1\r\n\r\n").await.expect("write");
                drop(peer);
                let mut got = Vec::new();
                let mut buf = [0u8; 3];
                loop {
                    let n = stream.read(&mut buf).await.expect("read");
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
                assert_eq!(got, b"GET / HTTP/1.1\r\n\r\n");
            });
    }
}
