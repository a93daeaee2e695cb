//! Regenerates the development certificates in `certs/`: a local CA (`ca.pem`, `ca-key.pem`)
//! and a certificate signed by it for `localhost`, `*.localhost`, `serverless.localhost`,
//! 127.0.0.1 and ::1 (`localhost.pem`, `localhost-key.pem`). sigil embeds them as its default
//! `--cert`/`--key` and issues certificates for Environment domains from the CA; tests trust
//! `ca.pem`. The keys are public: never use them outside development.
//!
//! `cargo run --example dev_certs`, then rebuild sigil.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("certs");
    std::fs::create_dir_all(&dir)?;
    let files = sigil::server::tls::generate_dev_certs()?;
    for (name, pem) in ["ca.pem", "ca-key.pem", "localhost.pem", "localhost-key.pem"]
        .iter()
        .zip(files)
    {
        std::fs::write(dir.join(name), pem)?;
    }
    println!(
        "wrote {}/{{ca,ca-key,localhost,localhost-key}}.pem",
        dir.display()
    );
    Ok(())
}
