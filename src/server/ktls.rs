//! Kernel TLS (`--ktls`): once rustls has completed the handshake of an HTTPS/1.1 connection,
//! its traffic keys go to the kernel (`TCP_ULP` "tls", then `TLS_TX` and `TLS_RX`) and the
//! socket is read and written as if it were plain TCP: the kernel encrypts and decrypts the
//! records. The fast path's writes then cost no encryption in user space, and a body the cache
//! marked for `sendfile` leaves through it, as on plain HTTP.
//!
//! The `ktls` crate does the hand-over: the handshake is read through its `CorkStream`, which
//! stops at record boundaries, so rustls holds no bytes past what it decrypted; those are
//! drained and served first ([`KernelStream`]). Any record after that which is not application
//! data ends the connection.
//!
//! Which cipher suites the kernel takes is probed once at start. A connection whose suite it
//! does not take, and every HTTP/2 connection (whose frames are written in user space
//! anyway), stays with rustls; so does every connection where the kernel has no TLS
//! (`CONFIG_TLS` unset: `setsockopt(TCP_ULP, "tls")` fails with ENOENT), and sigil says so at
//! start.

use std::io;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, TlsGetRecordType};
use rustls::SupportedCipherSuite;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use ktls::KtlsStream;
pub use ktls::{config_ktls_server as hand_over, CorkStream};

/// The cipher suites this kernel encrypts.
pub struct KernelTls(ktls::CompatibleCiphers);

impl KernelTls {
    /// Probes the kernel (each suite's keys set on a loopback connection); `Err` says why no
    /// connection can be handed over.
    pub async fn probe() -> Result<KernelTls, String> {
        let ciphers = ktls::CompatibleCiphers::new()
            .await
            .map_err(|e| format!("the probe failed: {e}"))?;
        let kernel = KernelTls(ciphers);
        if kernel.suites().is_empty() {
            return Err(
                "this kernel has no TLS (CONFIG_TLS), or none of its cipher suites".to_owned(),
            );
        }
        Ok(kernel)
    }

    /// Whether the kernel takes a connection that negotiated `suite`.
    pub fn takes(&self, suite: SupportedCipherSuite) -> bool {
        self.0.is_compatible(suite)
    }

    /// The suites it takes, for the start-up line.
    pub fn suites(&self) -> Vec<String> {
        let mut names = Vec::new();
        for (version, c) in [("TLS 1.3", &self.0.tls13), ("TLS 1.2", &self.0.tls12)] {
            for (on, cipher) in [
                (c.aes_gcm_128, "AES-128-GCM"),
                (c.aes_gcm_256, "AES-256-GCM"),
                (c.chacha20_poly1305, "ChaCha20-Poly1305"),
            ] {
                if on {
                    names.push(format!("{version} {cipher}"));
                }
            }
        }
        names
    }
}

/// An HTTPS/1.1 connection the kernel encrypts. Reads serve what rustls had decrypted before
/// the hand-over, then the socket's application data. Any other record — an alert, a
/// post-handshake message the kernel cannot act on (a KeyUpdate), a change_cipher_spec — ends
/// the connection: an alert as the end of the client's input, anything else as an error.
/// (The `ktls` crate's own reader panics on a change_cipher_spec record, which a client can
/// send; this one never calls it.) Writes and the `close_notify` on shutdown are the crate's.
pub struct KernelStream {
    inner: KtlsStream<TcpStream>,
    drained: Option<(Vec<u8>, usize)>,
    ended: bool,
}

impl KernelStream {
    /// Takes over a connection `hand_over` gave the kernel.
    pub fn new(stream: KtlsStream<TcpStream>) -> KernelStream {
        let (drained, io) = stream.into_raw();
        KernelStream {
            inner: KtlsStream::new(io, None),
            drained: drained.filter(|d| !d.is_empty()).map(|d| (d, 0)),
            ended: false,
        }
    }

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
