//! Regenerates the development certificates in `certs/`: a local CA and a certificate signed
//! by it for `localhost`, `*.localhost` (every Environment under the default `--domain`),
//! 127.0.0.1 and ::1. sigil embeds these as its default `--cert`/`--key`; tests trust `ca.pem`.
//!
//! `cargo run --example dev_certs` (writes certs/ca.pem, certs/localhost.pem,
//! certs/localhost-key.pem). Never use them outside development: the key is public.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("certs");
    std::fs::create_dir_all(&dir)?;

    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(
        DnType::CommonName,
        "sigil development CA (not for production)",
    );
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca.self_signed(&ca_key)?;

    let mut leaf = CertificateParams::new(vec![
        "localhost".to_owned(),
        "*.localhost".to_owned(),
        "serverless.localhost".to_owned(),
        "serverless-upload.localhost".to_owned(),
    ])?;
    leaf.subject_alt_names
        .push(SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
    leaf.subject_alt_names
        .push(SanType::IpAddress(std::net::Ipv6Addr::LOCALHOST.into()));
    leaf.distinguished_name
        .push(DnType::CommonName, "localhost");
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    let leaf_key = KeyPair::generate()?;
    let leaf_cert = leaf.signed_by(&leaf_key, &ca_cert, &ca_key)?;

    std::fs::write(dir.join("ca.pem"), ca_cert.pem())?;
    std::fs::write(
        dir.join("localhost.pem"),
        format!("{}{}", leaf_cert.pem(), ca_cert.pem()),
    )?;
    std::fs::write(dir.join("localhost-key.pem"), leaf_key.serialize_pem())?;
    println!(
        "wrote {}/{{ca.pem,localhost.pem,localhost-key.pem}}",
        dir.display()
    );
    Ok(())
}
