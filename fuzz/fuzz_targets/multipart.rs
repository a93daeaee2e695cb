//! Multipart version uploads: `control::versions::read_upload`, the code behind
//! `POST …/{Assets|Functions}/{Sid}/Versions`, over a body split into arbitrary chunks.
//!
//! Raw mode: any Content-Type and body end in an upload whose path is normal, or in a
//! 400, 413 or 415 — never another status, never a panic. Built mode: a well-formed body of
//! parts (`Path`, `Visibility`, `Content`, unknown ones) gives exactly the upload or the error
//! computed here from the parts: the Content bytes and type as sent, the normalised path, the
//! first repeated part refused, missing parts named in order Path, Visibility, Content, text
//! parts over 4 KiB refused with 413. In both, how the body is cut into chunks never changes
//! the outcome.
//!
//! Input: a first byte with its low bit clear means text, `content-type\nbody` (the seeds,
//! real uploads); otherwise the rest is read as arbitrary structured fields.
#![no_main]

use std::convert::Infallible;

use bytes::Bytes;
use http::StatusCode;
use libfuzzer_sys::arbitrary::{self, Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use sigil::asset_path::normalize;
use sigil::control::versions::{read_upload, ContentSink, Upload, MAX_CONTENT, MULTIPART_OVERHEAD};
use sigil::control::ApiError;
use sigil::manifest::Visibility;

/// The largest Path or Visibility part (`MAX_TEXT_PART` in versions.rs).
const MAX_TEXT_PART: usize = 4 * 1024;

struct Sink(Vec<u8>);

impl ContentSink for Sink {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), ApiError> {
        self.0.extend_from_slice(chunk);
        Ok(())
    }

    fn size(&self) -> u64 {
        self.0.len() as u64
    }
}

#[derive(Arbitrary, Debug, Clone, PartialEq)]
enum Name {
    Path,
    Visibility,
    Content,
    Other(String),
}

#[derive(Arbitrary, Debug)]
struct Part {
    name: Name,
    filename: Option<String>,
    content_type: Option<u8>,
    data: Vec<u8>,
}

#[derive(Arbitrary, Debug)]
enum Input {
    Raw {
        content_type: String,
        declared: Option<u64>,
        body: Vec<u8>,
        cuts: Vec<u16>,
    },
    Built {
        boundary: String,
        quoted: bool,
        parts: Vec<Part>,
        /// Some part data used as a visibility instead: a valid one, in some case.
        visibility_word: Option<(u8, u8)>,
        preamble: bool,
        declared: bool,
        cuts: Vec<u16>,
    },
}

const PART_TYPES: &[&str] = &[
    "text/plain",
    "application/octet-stream",
    "image/png",
    "application/json; charset=utf-8",
    "",
];

/// A text part's value: its bytes, which must be UTF-8 (a byte order mark is kept as the
/// character U+FEFF, which no valid Path or Visibility contains).
fn text(b: &[u8]) -> String {
    String::from_utf8(b.to_vec()).expect("refused when the part was read")
}

fn only(s: &str, ok: impl Fn(char) -> bool) -> String {
    s.chars().filter(|c| ok(*c)).collect()
}

fn chunks(body: Vec<u8>, cuts: &[u16]) -> Vec<Result<Bytes, Infallible>> {
    let body = Bytes::from(body);
    let mut at: Vec<usize> = cuts
        .iter()
        .map(|&c| usize::from(c) % (body.len() + 1))
        .collect();
    at.sort_unstable();
    at.dedup();
    let mut out = Vec::new();
    let mut from = 0;
    for i in at.into_iter().chain([body.len()]) {
        out.push(Ok(body.slice(from..i)));
        from = i;
    }
    out
}

fn run(
    content_type: &str,
    declared: Option<u64>,
    body: Vec<u8>,
    cuts: &[u16],
) -> Result<Upload<Sink>, ApiError> {
    let stream = futures_util::stream::iter(chunks(body, cuts));
    futures_executor::block_on(read_upload(content_type, declared, stream, || async {
        Ok(Sink(Vec::new()))
    }))
}

/// What the upload of these parts must give.
fn expected(parts: &[Part]) -> Outcome {
    let mut path = None;
    let mut visibility = None;
    let mut content = None;
    let once = |slot: &mut Option<_>, name: &str, v| match slot.replace(v) {
        Some(_) => Err(ApiError::bad_param(format!(
            "Parameter {name} was sent more than once"
        ))),
        None => Ok(()),
    };
    for p in parts {
        match &p.name {
            Name::Path | Name::Visibility if p.data.len() > MAX_TEXT_PART => {
                return Err(ApiError::too_large(format!(
                    "The upload is larger than the limit ({MAX_CONTENT} bytes of content)"
                )));
            }
            Name::Path | Name::Visibility if std::str::from_utf8(&p.data).is_err() => {
                let name = if p.name == Name::Path { "Path" } else { "Visibility" };
                return Err(ApiError::bad_param(format!(
                    "Invalid value for parameter {name}: it is not UTF-8"
                )));
            }
            Name::Path => once(&mut path, "Path", (p.data.clone(), None))?,
            Name::Visibility => once(&mut visibility, "Visibility", (p.data.clone(), None))?,
            Name::Content => {
                let ct = p
                    .content_type
                    .map(|i| PART_TYPES[usize::from(i) % PART_TYPES.len()].to_owned());
                once(&mut content, "Content", (p.data.clone(), ct))?
            }
            Name::Other(_) => {}
        }
    }
    let (path, _) = path.ok_or_else(|| ApiError::missing("Path"))?;
    let (visibility, _) = visibility.ok_or_else(|| ApiError::missing("Visibility"))?;
    let (content, ct) = content.ok_or_else(|| ApiError::missing("Content"))?;
    let path = normalize(&text(&path))
        .map_err(|why| ApiError::bad_param(format!("Invalid value for parameter Path: {why}")))?;
    let visibility = text(&visibility);
    let visibility = Visibility::parse(&visibility).ok_or_else(|| {
        ApiError::bad_param(format!(
            "Invalid value for parameter Visibility: {visibility:?} is not public, protected or private"
        ))
    })?;
    Ok((path, visibility, content, ct.filter(|t| !t.is_empty())))
}

/// The outcome as plain data, to compare runs.
type Outcome = Result<(String, Visibility, Vec<u8>, Option<String>), ApiError>;

fn plain(r: Result<Upload<Sink>, ApiError>) -> Outcome {
    r.map(|u| (u.path, u.visibility, u.content.0, u.content_type))
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        let (content_type, body) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &[][..]),
        };
        // Cut every 7 bytes: boundaries straddle chunks.
        let cuts: Vec<u16> = (1..body.len() / 7).map(|i| (i * 7) as u16).collect();
        check(Input::Raw {
            content_type: String::from_utf8_lossy(content_type).trim_end().to_owned(),
            declared: None,
            body: body.to_vec(),
            cuts,
        });
    } else if let Ok(inp) = Input::arbitrary_take_rest(Unstructured::new(rest)) {
        check(inp);
    }
});

fn check(inp: Input) {
    match inp {
        Input::Raw {
            content_type,
            declared,
            body,
            cuts,
        } => {
            let len = body.len() as u64;
            let whole = plain(run(&content_type, declared, body.clone(), &[]));
            let cut = plain(run(&content_type, declared, body, &cuts));
            assert_eq!(whole, cut, "chunking changed the outcome");
            match cut {
                Ok((path, _, content, content_type)) => {
                    assert_eq!(normalize(&path).as_deref(), Ok(path.as_str()));
                    assert!(content.len() as u64 <= len);
                    assert!(content_type.as_deref() != Some(""));
                }
                Err(e) => assert!(
                    [
                        StatusCode::BAD_REQUEST,
                        StatusCode::PAYLOAD_TOO_LARGE,
                        StatusCode::UNSUPPORTED_MEDIA_TYPE
                    ]
                    .contains(&e.status),
                    "{e:?}"
                ),
            }
        }
        Input::Built {
            boundary,
            quoted,
            mut parts,
            visibility_word,
            preamble,
            declared,
            cuts,
        } => {
            let boundary = only(&boundary, |c| {
                c.is_ascii_alphanumeric() || "-_.".contains(c)
            });
            if boundary.is_empty() || boundary.len() > 70 {
                return;
            }
            if let Some((which, case)) = visibility_word {
                let words = ["public", "protected", "private", "Public", "PROTECTED"];
                let w = words[usize::from(case) % words.len()];
                if let Some(p) = parts
                    .iter_mut()
                    .filter(|p| p.name == Name::Visibility)
                    .nth(usize::from(which) % 2)
                {
                    p.data = w.as_bytes().to_vec();
                }
            }
            let delimiter = format!("--{boundary}");
            let mut body = Vec::new();
            if preamble {
                body.extend_from_slice(b"preamble\r\n");
            }
            for p in &mut parts {
                if let Name::Other(n) = &mut p.name {
                    *n = only(n, |c| c.is_ascii_alphanumeric());
                    if ["Path", "Visibility", "Content", ""].contains(&n.as_str()) {
                        n.insert(0, 'x');
                    }
                }
                if p.data
                    .windows(delimiter.len())
                    .any(|w| w == delimiter.as_bytes())
                {
                    return;
                }
                let name = match &p.name {
                    Name::Path => "Path",
                    Name::Visibility => "Visibility",
                    Name::Content => "Content",
                    Name::Other(n) => n.as_str(),
                };
                body.extend_from_slice(
                    format!("{delimiter}\r\nContent-Disposition: form-data; name=\"{name}\"")
                        .as_bytes(),
                );
                if let Some(f) = &p.filename {
                    let f = only(f, |c| c.is_ascii_alphanumeric() || c == '.');
                    body.extend_from_slice(format!("; filename=\"{f}\"").as_bytes());
                }
                body.extend_from_slice(b"\r\n");
                if let Some(ct) = p.content_type.filter(|_| p.name == Name::Content) {
                    let ct = PART_TYPES[usize::from(ct) % PART_TYPES.len()];
                    body.extend_from_slice(format!("Content-Type: {ct}\r\n").as_bytes());
                } else {
                    p.content_type = None;
                }
                body.extend_from_slice(b"\r\n");
                body.extend_from_slice(&p.data);
                body.extend_from_slice(b"\r\n");
            }
            body.extend_from_slice(format!("{delimiter}--\r\n").as_bytes());
            let content_type = if quoted {
                format!("multipart/form-data; boundary=\"{boundary}\"")
            } else {
                format!("multipart/form-data; boundary={boundary}")
            };
            let declared = declared.then_some(body.len() as u64);
            let want = expected(&parts);
            let got = plain(run(&content_type, declared, body.clone(), &cuts));
            assert_eq!(got, want, "{}", String::from_utf8_lossy(&body));
            // A declared length over the limit is refused before anything is read.
            let over = run(
                &content_type,
                Some(MAX_CONTENT + MULTIPART_OVERHEAD + 1),
                body,
                &[],
            );
            assert_eq!(
                over.err().map(|e| e.status),
                Some(StatusCode::PAYLOAD_TOO_LARGE)
            );
        }
    }
}
