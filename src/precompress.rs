//! Precompressed variants (br and gzip) of text assets, made once when a Build is created,
//! so the edge never compresses on the request path.

use std::io::Write;

use crate::edge::http::encoding::Coding;

/// Content above this size is compressed with faster settings (Brotli's best quality costs
/// about a second per MiB).
const SMALL: usize = 1024 * 1024;

/// The variants worth keeping: each at least 5% smaller than `content`.
pub fn variants(content: &[u8]) -> std::io::Result<Vec<(Coding, Vec<u8>)>> {
    let mut out = Vec::new();
    let (br_quality, gzip_level) = if content.len() <= SMALL {
        (11, 9)
    } else {
        (6, 6)
    };

    let mut br = Vec::new();
    {
        let mut w = brotli::CompressorWriter::new(&mut br, 64 * 1024, br_quality, 22);
        w.write_all(content)?;
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(gzip_level));
    gz.write_all(content)?;
    let gz = gz.finish()?;

    for (coding, bytes) in [(Coding::Br, br), (Coding::Gzip, gz)] {
        if (bytes.len() as u64) * 100 <= (content.len() as u64) * 95 {
            out.push((coding, bytes));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn round_trips_and_skips_incompressible() {
        let text = "<p>hello sigil</p>\n".repeat(200);
        let v = variants(text.as_bytes()).expect("compress");
        assert_eq!(
            v.iter().map(|(c, _)| *c).collect::<Vec<_>>(),
            [Coding::Br, Coding::Gzip]
        );
        let mut plain = Vec::new();
        brotli::Decompressor::new(&v[0].1[..], 4096)
            .read_to_end(&mut plain)
            .expect("br");
        assert_eq!(plain, text.as_bytes());
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(&v[1].1[..])
            .read_to_end(&mut plain)
            .expect("gzip");
        assert_eq!(plain, text.as_bytes());
        // Tiny or random content is not worth a variant.
        assert!(variants(b"ab").expect("compress").is_empty());
        use sha2::Digest;
        let noise: Vec<u8> = (0..128u32)
            .flat_map(|i| sha2::Sha256::digest(i.to_le_bytes()))
            .collect();
        assert!(variants(&noise).expect("compress").is_empty());
    }
}
