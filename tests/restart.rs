//! Durability: a 2xx means the data survives `kill -9` right after it; a restart serves
//! everything that was there.

mod support;

use support::Sigil;

#[test]
fn everything_survives_kill_9() {
    let sigil = Sigil::start();
    let api = sigil.client();
    let zs = api.service("durable");
    let ze = api.environment(&zs, "prod", Some("prod")).s("sid");
    let code = b"exports.handler = () => 'durable';";
    let (fh, fv) = api.version(
        &zs,
        "Functions",
        "/fn",
        "protected",
        code,
        "application/javascript",
    );
    let (_, av) = api.version(
        &zs,
        "Assets",
        "/index.html",
        "public",
        b"<p>hi</p>",
        "text/html",
    );
    let (zb, _) = api.build(&zs, &[&av], &[&fv]);
    let zd = api
        .post(
            &format!("/v1/Services/{zs}/Environments/{ze}/Deployments"),
            &[("BuildSid", &zb)],
        )
        .expect(201)
        .s("sid");
    let vars = format!("/v1/Services/{zs}/Environments/{ze}/Variables");
    let zv = api
        .post(&vars, &[("Key", "K"), ("Value", "V")])
        .expect(201)
        .s("sid");
    let paths = [
        format!("/v1/Services/{zs}"),
        format!("/v1/Services/{zs}/Environments/{ze}"),
        format!("/v1/Services/{zs}/Functions/{fh}/Versions/{fv}"),
        format!("/v1/Services/{zs}/Functions/{fh}/Versions/{fv}/Content"),
        format!("/v1/Services/{zs}/Builds/{zb}"),
        format!("/v1/Services/{zs}/Environments/{ze}/Deployments/{zd}"),
        format!("{vars}/{zv}"),
        format!("/v1/Services/{zs}/Builds"),
    ];
    let before: Vec<_> = paths.iter().map(|p| api.get(p).expect(200).json).collect();

    let data = sigil.data().to_owned();
    let dir = sigil.kill9();
    let again = Sigil::start_in(&data, &[], true);
    let api2 = again.client();
    for (p, b) in paths.iter().zip(&before) {
        let mut after = api2.get(p).expect(200).json;
        // Only the host:port of the absolute URLs differs between the two runs.
        let text = after
            .to_string()
            .replace(&again.api, &sigil_api_placeholder());
        after = serde_json::from_str(&text).expect("json");
        let b = serde_json::from_str::<serde_json::Value>(
            &b.to_string().replace(&api.base, &sigil_api_placeholder()),
        )
        .expect("json");
        assert_eq!(after, b, "{p}");
    }
    assert_eq!(
        api2.get(&format!("/v1/Services/{zs}/Environments/{ze}"))
            .expect(200)
            .s("build_sid"),
        zb
    );
    drop(again);
    drop(dir);
}

fn sigil_api_placeholder() -> String {
    "http://API".to_owned()
}

#[test]
fn each_acknowledged_write_survives_an_immediate_kill() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    let mut expected: Vec<String> = Vec::new();
    let mut sigil = Sigil::start_in(&data, &[], true);
    let zs = sigil.client().service("acks");
    let ze = sigil.client().environment(&zs, "prod", None).s("sid");
    for round in 0..6 {
        let api = sigil.client();
        // Check everything acknowledged before the last kill is there.
        for path in &expected {
            api.get(path).expect(200);
        }
        let path = match round % 3 {
            0 => {
                let zv = api
                    .post(
                        &format!("/v1/Services/{zs}/Environments/{ze}/Variables"),
                        &[("Key", &format!("K{round}")), ("Value", "v")],
                    )
                    .expect(201)
                    .s("sid");
                format!("/v1/Services/{zs}/Environments/{ze}/Variables/{zv}")
            }
            1 => {
                let content = format!("round {round}");
                let (fh, fv) = api.version(
                    &zs,
                    "Functions",
                    "/f",
                    "public",
                    content.as_bytes(),
                    "text/plain",
                );
                format!("/v1/Services/{zs}/Functions/{fh}/Versions/{fv}/Content")
            }
            _ => {
                let (_, av) = api.version(&zs, "Assets", "/a", "public", b"a", "text/plain");
                let zb = api
                    .post(
                        &format!("/v1/Services/{zs}/Builds"),
                        &[("AssetVersions", &av)],
                    )
                    .expect(201)
                    .s("sid");
                format!("/v1/Services/{zs}/Builds/{zb}")
            }
        };
        expected.push(path);
        sigil.kill9();
        sigil = Sigil::start_in(&data, &[], true);
    }
    let api = sigil.client();
    for path in &expected {
        let r = api.get(path).expect(200);
        if path.ends_with("/Content") {
            assert!(r.s("content").starts_with("round "));
        }
    }
    // Builds interrupted while building are finished after the restart.
    for path in expected.iter().filter(|p| p.contains("/Builds/")) {
        let zb = path.rsplit('/').next().expect("sid");
        assert_eq!(api.wait_build(&zs, zb), "completed");
    }
}

/// Every file under `dir`, at any depth.
fn walk_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk_files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Where the blob of `content` lives under `data`.
fn blob_path(data: &std::path::Path, content: &[u8]) -> std::path::PathBuf {
    use sha2::Digest;
    let hex: String = sha2::Sha256::digest(content)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    data.join("blobs").join(&hex[..2]).join(&hex)
}

#[test]
fn unreferenced_blobs_are_collected_at_start_and_a_second_server_is_refused() {
    let sigil = Sigil::start();
    let api = sigil.client();
    let data = sigil.data().to_owned();
    // Deployed (with br/gzip variants: a text asset), uploaded only, and a deleted Service's.
    let page = "<p>deployed and kept</p>".repeat(40);
    let site = api.deploy_site(
        "kept",
        &[("/index.html", "public", page.as_bytes(), "text/html")],
    );
    api.version(
        &site.svc,
        "Assets",
        "/draft.txt",
        "public",
        b"uploaded, not built",
        "text/plain",
    );
    let gone = api.service("gone");
    api.version(
        &gone,
        "Assets",
        "/x.txt",
        "public",
        b"content of a deleted Service",
        "text/plain",
    );
    api.delete(&format!("/v1/Services/{gone}")).expect(204);
    // A Build with a Function: its dependency tree, packed, is a blob only the Build refers
    // to (the largest here by far).
    let code = api.service("code");
    let (_, fv) = api.version(
        &code,
        "Functions",
        "/f",
        "public",
        b"exports.handler = (c, e, cb) => cb(null, 'ok');",
        "application/javascript",
    );
    let zb = api
        .post(
            &format!("/v1/Services/{code}/Builds"),
            &[("FunctionVersions", fv.as_str())],
        )
        .expect(201)
        .s("sid");
    assert_eq!(
        api.wait_build_within(&code, &zb, std::time::Duration::from_secs(300)),
        "completed"
    );
    let largest = || {
        walk_files(&data.join("blobs"))
            .into_iter()
            .max_by_key(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
            .expect("blobs")
    };
    let tree = largest();
    assert!(
        std::fs::metadata(&tree).expect("tree").len() > 1 << 20,
        "{tree:?}"
    );
    // A blob whose upload never reached the metadata (a full disk, a kill in between).
    let orphan = blob_path(&data, b"an orphan");
    std::fs::create_dir_all(orphan.parent().expect("fan")).expect("fan dir");
    std::fs::write(&orphan, b"an orphan").expect("orphan");
    let blob_count = || {
        std::fs::read_dir(data.join("blobs"))
            .expect("blobs")
            .map(|d| {
                std::fs::read_dir(d.expect("fan").path())
                    .expect("fan")
                    .count()
            })
            .sum::<usize>()
    };
    let before = blob_count();

    // While it runs, a second server on the same data directory is refused.
    let mut second = Sigil::command(&data, &[])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("second sigil runs");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        if let Some(status) = second.try_wait().expect("wait") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = second.kill();
            panic!("a second sigil serve on the same data directory kept running");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().expect("stderr"), &mut stderr)
        .expect("stderr");
    assert!(!status.success());
    assert!(stderr.contains("in use by another sigil"), "{stderr}");
    assert!(orphan.exists(), "the refused server collected nothing");

    let dir = sigil.kill9();
    let again = Sigil::start_in(&data, &[], true);
    // The collection runs at start while API requests wait: once one is answered, it is done.
    again.client().get("/v1/Services").expect(200);
    assert!(!orphan.exists(), "the orphan is collected");
    assert!(!blob_path(&data, b"content of a deleted Service").exists());
    assert!(blob_path(&data, page.as_bytes()).exists());
    assert!(blob_path(&data, b"uploaded, not built").exists());
    assert!(tree.exists(), "the packed dependency tree is kept");
    assert_eq!(
        blob_count(),
        before - 2,
        "exactly the two unreferenced blobs"
    );
    // The deployed page and its br variant are served as before.
    let edge = again.edge(&[&site.domain]);
    let url = edge.url(&site.domain, "/index.html");
    let plain = edge.get(&url, &[]).expect(200);
    assert_eq!(plain.text(), page);
    let br = edge.get(&url, &[("Accept-Encoding", "br")]).expect(200);
    assert_eq!(br.header("content-encoding"), Some("br"));
    drop(again);
    drop(dir);
}

/// The Log lines of requests answered before a graceful stop are in the Logs resource after
/// it: lines wait in memory for their batch, and a stop writes them first.
#[test]
fn request_log_lines_queued_at_a_graceful_stop_are_written() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    let mut sigil = Sigil::start_in(&data, &[], true);
    let api = sigil.client();
    let site = api.deploy_site("stopping", &[("/a.txt", "public", b"abc", "text/plain")]);
    let edge = sigil.edge(&[&site.domain]);
    // The first line goes at once, and its batch's wait starts: the others queue behind it.
    for _ in 0..5 {
        edge.get(&edge.url(&site.domain, "/a.txt"), &[]).expect(200);
    }
    sigil.sigterm();
    let status = sigil
        .wait_exit(std::time::Duration::from_secs(30))
        .expect("exits");
    assert!(status.success(), "{status:?}");
    let again = Sigil::start_in(&data, &[], true);
    let logs = again
        .client()
        .get(&format!(
            "/v1/Services/{}/Environments/{}/Logs?PageSize=50",
            site.svc, site.env
        ))
        .expect(200);
    let lines: Vec<&str> = logs.json["logs"]
        .as_array()
        .expect("logs")
        .iter()
        .filter_map(|l| l["message"].as_str())
        .filter(|m| m.contains("/a.txt 200"))
        .collect();
    assert_eq!(lines.len(), 5, "{lines:?}");
}
