//! The JavaScript tests of sigil's Function runner (src/functions/runner.test.js, `node --test`),
//! run against the `twilio` package as a Build gets it (installed by sigil's own npm step).

mod support;

use std::process::Command;

#[test]
fn the_runner_passes_its_javascript_tests() {
    let set = sigil::functions::deps::set(&[]).expect("the default set");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let deps = runtime
        .block_on(sigil::functions::deps::install(
            &support::functions_dir(),
            std::path::Path::new("npm"),
            &set,
        ))
        .expect("npm installs twilio");
    let out = Command::new("node")
        .arg("--test")
        .arg("--test-timeout=60000")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src/functions/runner.test.js"
        ))
        .env("SIGIL_TEST_NODE_MODULES", deps.join("node_modules"))
        .output()
        .expect("node runs");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "runner.test.js failed:\n{text}");
    assert!(text.contains("# fail 0"), "{text}");
}
