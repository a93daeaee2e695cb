//! Hostile input: malformed and huge Range lists. sigil honours one range; a list of several
//! (10,000 copies of `0-0`, overlapping `0-` ranges, thousands of distinct ones) or anything
//! malformed gets the whole representation once (RFC 9110 §14.2 lets a server ignore Range) —
//! so no Range header makes a response larger than the file. A Range never opens a private
//! or protected asset.

mod hostile;
mod support;

use hostile::{assert_no_leak, exchange, get, Fixture};

const SIZE: usize = 64 * 1024;

fn range_list(spec: impl Fn(usize) -> String, n: usize) -> String {
    let specs: Vec<String> = (0..n).map(spec).collect();
    format!("bytes={}", specs.join(","))
}

#[test]
fn range_lists_never_amplify() {
    // Heads up to 512 KiB, so that lists of 10,000 ranges reach the Range parser (the
    // default --max-header-bytes, 32 KiB, would refuse them with 431: hostile_overlong_paths checks that).
    let fx = Fixture::start(&["--max-header-bytes", "524288"]);
    let big: Vec<u8> = (0..SIZE as u32).map(|i| (i % 251) as u8).collect();
    let site = fx.sigil.client().deploy_site(
        "ranges",
        &[("/big.bin", "public", &big, "application/octet-stream")],
    );

    // (what, Range value, status, the body it must be)
    let whole = big.as_slice();
    let cases: Vec<(&str, String, u16, &[u8])> = vec![
        (
            "10,000 × 0-0",
            range_list(|_| "0-0".into(), 10_000),
            200,
            whole,
        ),
        (
            "10,000 × the whole file",
            range_list(|_| format!("0-{}", SIZE - 1), 10_000),
            200,
            whole,
        ),
        (
            "10,000 × 0-",
            range_list(|_| "0-".into(), 10_000),
            200,
            whole,
        ),
        (
            "10,000 × -65536",
            range_list(|_| format!("-{SIZE}"), 10_000),
            200,
            whole,
        ),
        (
            "overlapping 0-,0-,0-,0-",
            "bytes=0-,0-,0-,0-".into(),
            200,
            whole,
        ),
        (
            "overlapping pieces",
            "bytes=0-40000,10000-50000,20000-65535".into(),
            200,
            whole,
        ),
        (
            "4,000 distinct ranges",
            range_list(|i| format!("{i}-{i}"), 4_000),
            200,
            whole,
        ),
        (
            "2,000 unsatisfiable ranges",
            range_list(|i| format!("{}-", SIZE + i), 2_000),
            200,
            whole,
        ),
        (
            "unsatisfiable and satisfiable",
            format!("bytes={SIZE}-,0-0"),
            200,
            whole,
        ),
        (
            "5,000 commas then one range",
            format!("bytes={}0-1", ",".repeat(5_000)),
            206,
            &big[..2],
        ),
        ("empty specs", "bytes=,,,".into(), 200, whole),
        ("garbage", "bytes=--,,-,a-b".into(), 200, whole),
        ("reversed", "bytes=10-5".into(), 200, whole),
        ("negative start", "bytes=-5-3".into(), 200, whole),
        (
            "a number past u64",
            "bytes=0-99999999999999999999999".into(),
            200,
            whole,
        ),
        (
            "a suffix past u64",
            "bytes=-99999999999999999999999".into(),
            200,
            whole,
        ),
        ("another unit", "items=0-1".into(), 200, whole),
        ("no unit", "0-1".into(), 200, whole),
        ("one range", "bytes=100-199".into(), 206, &big[100..200]),
        (
            "one range past the end",
            format!("bytes=0-{}", SIZE * 10),
            206,
            whole,
        ),
        (
            "one range starting past the end",
            format!("bytes={SIZE}-"),
            416,
            b"Range Not Satisfiable\n",
        ),
        (
            "a zero suffix",
            "bytes=-0".into(),
            416,
            b"Range Not Satisfiable\n",
        ),
    ];
    for (what, range, status, body) in &cases {
        let what = format!("edge Range {what}");
        let header = format!("Range: {range}\r\n");
        let x = exchange(fx.edge(), &get(&site.domain, b"/big.bin", &[&header]));
        let r = x.expect(*status, &what);
        assert!(
            r.body.len() <= SIZE,
            "{what}: {} bytes for a {SIZE}-byte file",
            r.body.len()
        );
        assert_eq!(r.body.as_slice(), *body, "{what}: body");
        assert!(
            !r.header("content-type")
                .is_some_and(|c| c.starts_with("multipart/byteranges")),
            "{what}: no multipart answer"
        );
        if *status == 416 {
            assert_eq!(
                r.header("content-range"),
                Some(format!("bytes */{SIZE}").as_str())
            );
        }
    }
    // Two Range fields: the first is used (one range, bounded).
    let x = exchange(
        fx.edge(),
        &get(
            &site.domain,
            b"/big.bin",
            &["Range: bytes=0-1\r\n", "Range: bytes=0-65535\r\n"],
        ),
    );
    assert_eq!(x.expect(206, "edge: two Range fields").body, &big[..2]);
    // A Range field over --max-header-bytes: 431, nothing served.
    let huge = format!("Range: {}\r\n", range_list(|_| "0-0".into(), 150_000));
    exchange(fx.edge(), &get(&site.domain, b"/big.bin", &[&huge]))
        .expect(431, "edge: a 600 KB Range");
    // A NUL in the field: hyper's 400.
    exchange(
        fx.edge(),
        &get(&site.domain, b"/big.bin", &["Range: bytes=0-1\0\r\n"]),
    )
    .expect(400, "edge: a NUL in Range");
    // Ranges do not open private or protected assets.
    for target in [&b"/secret.txt"[..], b"/prot.txt"] {
        for range in ["bytes=0-0", "bytes=0-,0-,0-", "bytes=-1"] {
            let what = format!("edge {} Range {range}", String::from_utf8_lossy(target));
            let header = format!("Range: {range}\r\n");
            let x = exchange(fx.edge(), &get(&fx.site.domain, target, &[&header]));
            x.expect(403, &what);
            assert_no_leak(&x.raw, &what);
        }
    }
    // HEAD ignores Range: headers only.
    let header = format!("Range: {}\r\n", range_list(|_| "0-0".into(), 10_000));
    let mut head = get(&site.domain, b"/big.bin", &[&header]);
    head.splice(0..3, b"HEAD".iter().copied());
    let x = exchange(fx.edge(), &head);
    let r = x.expect(200, "edge HEAD with 10,000 ranges");
    assert_eq!(r.header("content-length"), Some(SIZE.to_string().as_str()));

    // The API does not do ranges: the same JSON with or without a Range list.
    let plain = exchange(
        fx.api(),
        &hostile::api_request("GET", b"/v1/Services", &[], b""),
    );
    let ranged = exchange(
        fx.api(),
        &hostile::api_request("GET", b"/v1/Services", &[&header], b""),
    );
    let (plain, ranged) = (
        plain.expect(200, "API list"),
        ranged.expect(200, "API list with 10,000 ranges"),
    );
    assert_eq!(
        plain.body.len(),
        ranged.body.len(),
        "API: Range changes nothing"
    );

    fx.assert_still_serving();
    let x = exchange(fx.edge(), &get(&site.domain, b"/big.bin", &[]));
    assert_eq!(x.expect(200, "the big asset afterwards").body, big);
}
