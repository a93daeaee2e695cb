//! The API on the shared stores (PostgreSQL + S3) against the embedded ones (SQLite + files),
//! in one run on one machine: `cargo bench --bench stores`. Real servers, started as the tests
//! start them (a throwaway PostgreSQL cluster, s3s-fs), release builds of sigil.
//!
//! Prints p50/p99 of an Asset Version upload (1 KiB, 5 MiB), a Build of 100 versions and a
//! Deployment; uploads per second from 8 clients against one replica and against two; and
//! the start of a process over 1,000 Environments with a Build of 100 assets each.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::{Api, Fleet, Part, Sigil};

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn summary(mut d: Vec<Duration>) -> (f64, f64) {
    d.sort();
    (percentile(&d, 0.5), percentile(&d, 0.99))
}

fn upload(api: &Api, versions: &str, path: &str, content: &[u8]) -> String {
    api.upload(
        versions,
        vec![
            Part::text("Path", path),
            Part::text("Visibility", "public"),
            Part::file("Content", content.to_vec(), "f", "application/octet-stream"),
        ],
    )
    .expect(201)
    .s("sid")
}

/// (p50, p99) in ms of each operation, in the order printed.
fn latencies(sigil: &Sigil, tag: &str) -> Vec<(&'static str, (f64, f64))> {
    let api = sigil.client();
    let svc = api.service(&format!("bench-{tag}"));
    let versions = api.versions_url(&svc, "Assets");
    let mut out = Vec::new();
    let small: Vec<Duration> = (0..200)
        .map(|i| {
            let content = format!("{tag} small {i} {}", "x".repeat(1000));
            let t = Instant::now();
            upload(&api, &versions, &format!("/s{i}.txt"), content.as_bytes());
            t.elapsed()
        })
        .collect();
    out.push(("upload 1 KiB", summary(small)));
    let large: Vec<Duration> = (0..20u8)
        .map(|i| {
            let content = vec![i; 5 * 1024 * 1024];
            let t = Instant::now();
            upload(&api, &versions, &format!("/l{i}.bin"), &content);
            t.elapsed()
        })
        .collect();
    out.push(("upload 5 MiB", summary(large)));
    // 100 versions of 100 assets, then Builds of them.
    let sids: Vec<String> = (0..100)
        .map(|i| {
            let versions = api.versions_url(&svc, "Assets");
            upload(
                &api,
                &versions,
                &format!("/b{i}.html"),
                format!("<p>{tag} {i}</p>").as_bytes(),
            )
        })
        .collect();
    let form: Vec<(&str, &str)> = sids.iter().map(|s| ("AssetVersions", s.as_str())).collect();
    let mut builds = Vec::new();
    let timed: Vec<Duration> = (0..10)
        .map(|_| {
            let t = Instant::now();
            let zb = api
                .post(&format!("/v1/Services/{svc}/Builds"), &form)
                .expect(201)
                .s("sid");
            assert_eq!(api.wait_build(&svc, &zb), "completed");
            builds.push(zb);
            t.elapsed()
        })
        .collect();
    out.push(("Build of 100 versions", summary(timed)));
    let env = api.environment(&svc, "prod", None).s("sid");
    let deployments = format!("/v1/Services/{svc}/Environments/{env}/Deployments");
    let timed: Vec<Duration> = (0..50)
        .map(|i| {
            let t = Instant::now();
            api.post(&deployments, &[("BuildSid", builds[i % 2].as_str())])
                .expect(201);
            t.elapsed()
        })
        .collect();
    out.push(("Deployment", summary(timed)));
    out
}

/// Uploads per second from 8 clients spread over `replicas`, for `secs` seconds.
fn throughput(replicas: &[&Sigil], secs: u64) -> f64 {
    let api = replicas[0].client();
    let svc = api.service(&format!("tput-{}", replicas.len()));
    let versions = api.versions_url(&svc, "Assets");
    let deadline = Instant::now() + Duration::from_secs(secs);
    let done: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|c| {
                let (api, versions) = (replicas[c % replicas.len()].client(), versions.clone());
                scope.spawn(move || {
                    let mut n = 0;
                    while Instant::now() < deadline {
                        let content = format!("client {c} upload {n} {}", "y".repeat(1000));
                        upload(
                            &api,
                            &versions,
                            &format!("/t{c}-{n}.txt"),
                            content.as_bytes(),
                        );
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("client")).sum()
    });
    done as f64 / secs as f64
}

/// The process's peak resident memory in MiB (VmHWM) after 20 concurrent 25 MiB uploads.
fn peak_rss_after_large_uploads(sigil: &Sigil) -> (f64, f64) {
    let hwm = || {
        std::fs::read_to_string(format!("/proc/{}/status", sigil.pid()))
            .expect("status")
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .expect("VmHWM")
            / 1024.0
    };
    let before = hwm();
    let api = sigil.client();
    let svc = api.service("large");
    std::thread::scope(|scope| {
        for c in 0..20u8 {
            let (api, svc) = (sigil.client(), svc.clone());
            scope.spawn(move || {
                let versions = api.versions_url(&svc, "Assets");
                upload(
                    &api,
                    &versions,
                    &format!("/big{c}.bin"),
                    &vec![c; 25 * 1024 * 1024],
                );
            });
        }
    });
    (before, hwm())
}

/// 1,000 Environments, each deployed with one Build of 100 assets.
fn populate(sigil: &Sigil) {
    let api = sigil.client();
    let svc = api.service("many");
    let versions = api.versions_url(&svc, "Assets");
    let form: Vec<(String, String)> = (0..100)
        .map(|i| {
            let v = upload(
                &api,
                &versions,
                &format!("/p{i}.txt"),
                format!("page {i}").as_bytes(),
            );
            ("AssetVersions".to_owned(), v)
        })
        .collect();
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let zb = api
        .post(&format!("/v1/Services/{svc}/Builds"), &form)
        .expect(201)
        .s("sid");
    api.wait_build(&svc, &zb);
    for i in 0..1000 {
        let env = api
            .environment(&svc, &format!("e{i}"), Some(&format!("e{i}")))
            .s("sid");
        api.post(
            &format!("/v1/Services/{svc}/Environments/{env}/Deployments"),
            &[("BuildSid", zb.as_str())],
        )
        .expect(201);
    }
}

/// Milliseconds from spawning `cmd` to its ready line.
fn start_time(cmd: std::process::Command, data: &std::path::Path) -> f64 {
    let t = Instant::now();
    let s = Sigil::spawn_command(cmd, data);
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    drop(s);
    ms
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` lists benchmarks; this one only runs on purpose
    }
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_default();
    println!("CPU: {cpu}");

    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("embedded");
    let embedded = Sigil::spawn_command(
        {
            let mut c = Sigil::embedded_command(&data, &["--access-log", "false"]);
            c.env("SIGIL_ACCOUNT_SID", support::ACCOUNT_SID)
                .env("SIGIL_AUTH_TOKEN", support::AUTH_TOKEN);
            c
        },
        &data,
    );
    let fleet = Fleet::new();
    let shared = fleet.replica_with(|c| {
        c.args(["--access-log", "false"]);
    });
    let shared2 = fleet.replica_with(|c| {
        c.args(["--access-log", "false"]);
    });

    let e = latencies(&embedded, "e");
    let s = latencies(&shared, "s");
    println!(
        "| operation | SQLite + files p50 / p99 ms | PostgreSQL + S3 p50 / p99 ms | p50 ratio |"
    );
    println!("|---|---|---|---|");
    for ((name, (ep50, ep99)), (_, (sp50, sp99))) in e.iter().zip(&s) {
        println!(
            "| {name} | {ep50:.2} / {ep99:.2} | {sp50:.2} / {sp99:.2} | {:.2}x |",
            sp50 / ep50
        );
    }
    let t_embedded = throughput(&[&embedded], 5);
    let t_one = throughput(&[&shared], 5);
    let t_two = throughput(&[&shared, &shared2], 5);
    println!("| 1 KiB uploads/s, 8 clients | SQLite + files: {t_embedded:.0} | PostgreSQL + S3, one replica: {t_one:.0}; two replicas: {t_two:.0} ({:.2}x) | |", t_two / t_one);

    let (e_before, e_peak) = peak_rss_after_large_uploads(&embedded);
    let (s_before, s_peak) = peak_rss_after_large_uploads(&shared2);
    println!(
        "| peak RSS, 20 concurrent 25 MiB uploads | SQLite + files: {e_before:.0} -> {e_peak:.0} MiB | PostgreSQL + S3: {s_before:.0} -> {s_peak:.0} MiB | |"
    );

    populate(&embedded);
    populate(&shared);
    drop(embedded);
    let embedded_start = start_time(
        Sigil::embedded_command(&data, &["--access-log", "false"]),
        &data,
    );
    let fresh = dir.path().join("fresh");
    let shared_start = start_time(fleet.command(&fresh), &fresh);
    println!(
        "| start to serving 1,000 Environments x 100 assets | SQLite + files: {embedded_start:.0} ms | PostgreSQL + S3, a new replica: {shared_start:.0} ms | |"
    );
}
