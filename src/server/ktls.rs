//! Kernel TLS (`--ktls`): once rustls has completed the handshake of an HTTPS/1.1 connection,
//! its traffic keys go to the kernel (`TCP_ULP` "tls", then `TLS_TX` and `TLS_RX`) and the
//! socket is read and written as if it were plain TCP: the kernel encrypts and decrypts the
//! records. The fast path's writes then cost no encryption in user space, and a body the cache
//! marked for `sendfile` leaves through it, as on plain HTTP.
//!
//! The `ktls` crate does the hand-over: the handshake is read through its `CorkStream`, which
//! stops at record boundaries, so rustls holds no bytes past what it decrypted; those are
//! drained and served first. Alerts and post-handshake messages reach `KtlsStream` as control
//! messages (a `close_notify` ends the connection).
//!
//! Which cipher suites the kernel takes is probed once at start. A connection whose suite it
//! does not take, and every HTTP/2 connection (whose frames are written in user space
//! anyway), stays with rustls; so does every connection where the kernel has no TLS
//! (`CONFIG_TLS` unset: `setsockopt(TCP_ULP, "tls")` fails with ENOENT), and sigil says so at
//! start.

use rustls::SupportedCipherSuite;

pub use ktls::{config_ktls_server as hand_over, CorkStream, KtlsStream};

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
