//! One Node process running `runner.js` for one Build: started with what it may read, its
//! memory cap and an empty environment, then asked one call at a time over its pipes.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use super::tree::Tree;

/// The longest line a worker may send (a reply's body is in one, base64 when binary): past
/// it the worker is taken for broken, so a Function cannot make sigil hold any amount.
const MAX_LINE: usize = 16 * 1024 * 1024;
/// The longest line of a worker's own output (not the runner's) that sigil logs.
const MAX_LOGGED: usize = 8 * 1024;

/// How a worker is started.
#[derive(Debug, Clone)]
pub struct Spawn {
    /// The `node` binary.
    pub node: PathBuf,
    /// Its major version.
    pub major: u32,
    /// Its permission-model flag (`--permission`, or `--experimental-permission` before
    /// Node 22).
    pub permission_flag: &'static str,
    /// sigil's `runner.js`.
    pub runner: PathBuf,
    /// Memory cap in MiB.
    pub memory_mb: u64,
    /// The user and group it runs as (when sigil runs as root).
    pub user: Option<(u32, u32)>,
    /// Stack traces in error replies.
    pub debug: bool,
}

/// A line from the runner.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Line {
    Ready,
    Log {
        level: String,
        message: String,
    },
    Reply {
        id: u64,
        #[serde(flatten)]
        reply: Reply,
    },
    Fatal {
        error: Value,
    },
}

/// A Function's answer, as the runner gives it.
#[derive(Debug, Deserialize)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Header pairs, in order.
    pub headers: Vec<(String, String)>,
    /// The body: text, or base64 when `base64`.
    pub body: String,
    /// Whether `body` is base64.
    #[serde(default)]
    pub base64: bool,
}

/// How a call went wrong.
#[derive(Debug)]
pub enum CallError {
    /// No answer in time.
    Timeout,
    /// The process ended (an uncaught exception, the memory cap, a kill): what it said.
    Died(Value),
}

/// A running worker. However it ends (killed, dropped with a cancelled call), its process is
/// killed and its place under the host's cap given back once the process has exited, so that a
/// worker started in its place never overlaps it.
pub struct Worker {
    /// The process and its place (taken only when the worker is dropped).
    process: Option<(Child, Slot)>,
    stdin: ChildStdin,
    out: BufReader<ChildStdout>,
    next_id: u64,
    /// When it last finished a call.
    pub idle_since: Instant,
}

impl Drop for Worker {
    fn drop(&mut self) {
        let Some((mut child, slot)) = self.process.take() else {
            return;
        };
        let _ = child.start_kill();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = child.wait().await;
                drop(slot);
            });
        }
    }
}

/// A worker's place under the host's cap (`--function-workers`), held while the worker lives;
/// when it ends, the place is given back first and then those waiting for one are told.
pub struct Slot {
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
    freed: std::sync::Arc<tokio::sync::Notify>,
}

impl Slot {
    /// A place, and whom to tell when it is free again.
    pub fn new(
        permit: tokio::sync::OwnedSemaphorePermit,
        freed: std::sync::Arc<tokio::sync::Notify>,
    ) -> Slot {
        Slot {
            permit: Some(permit),
            freed,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        drop(self.permit.take());
        self.freed.notify_waiters();
    }
}

impl Worker {
    /// Starts a worker for `tree`, ready to take calls within `within`, holding `slot` while it
    /// lives; lines it logs while starting go to `log`.
    pub async fn start(
        spawn: &Spawn,
        tree: &Tree,
        within: Duration,
        slot: Slot,
        log: &mut (dyn FnMut(&str, String) + Send),
    ) -> Result<Worker, String> {
        // The memory cap is the data segment's limit, set by the shell that then becomes
        // Node (a limit set from outside needs privileges the worker's user takes away).
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            // Replies on descriptor 3 (this pipe), what Node and the Function print on 1 and
            // 2 (the log pipe): a Function writing to its stdout cannot mix into a reply.
            .arg(r#"ulimit -d "$0" && unset PWD && exec "$@" 3>&1 1>&2"#)
            .arg(spawn.memory_mb.saturating_mul(1024).to_string())
            .arg(&spawn.node)
            .arg("--disable-warning=ExperimentalWarning");
        cmd.arg(spawn.permission_flag);
        for readable in [&tree.root, &tree.deps, &spawn.runner] {
            cmd.arg(format!("--allow-fs-read={}", readable.display()));
        }
        cmd.arg(format!("--max-old-space-size={}", spawn.memory_mb * 3 / 4))
            .arg(&spawn.runner)
            .current_dir(&tree.root)
            // Nothing of sigil's environment (secrets, paths) reaches a Function.
            .env_clear()
            .env("NODE_ENV", "production")
            .env("TZ", "UTC")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some((uid, gid)) = spawn.user {
            cmd.uid(uid).gid(gid);
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("{} could not be started: {e}", spawn.node.display()))?;
        let stdin = child.stdin.take().expect("stdin is piped");
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let root = tree.root.display().to_string();
        // What Node itself prints (a fatal heap limit, a crash) goes to sigil's log.
        tokio::spawn(async move {
            let mut err = BufReader::new(stderr);
            while let Ok(Some((line, cut))) = read_line(&mut err, MAX_LOGGED).await {
                let line = String::from_utf8_lossy(&line);
                let more = if cut { "…" } else { "" };
                tracing::warn!(target: "sigil::function", build = %root, "node: {line}{more}");
            }
        });
        let mut worker = Worker {
            process: Some((child, slot)),
            stdin,
            out: BufReader::new(stdout),
            next_id: 1,
            idle_since: Instant::now(),
        };
        let pairs = |list: &[(String, PathBuf)]| -> serde_json::Map<String, Value> {
            list.iter()
                .map(|(p, f)| (p.clone(), Value::String(f.display().to_string())))
                .collect()
        };
        let init = json!({
            "type": "init",
            "buildDir": tree.root.display().to_string(),
            "functions": pairs(&tree.functions),
            "assets": pairs(&tree.assets),
            "debug": spawn.debug,
        });
        let ready = async {
            worker.send(&init).await.map_err(|e| e.to_string())?;
            loop {
                match worker.next_line().await {
                    Ok(Line::Ready) => return Ok(()),
                    Ok(Line::Log { level, message, .. }) => log(&level, message),
                    Ok(Line::Fatal { error, .. }) => return Err(describe(&error)),
                    Ok(Line::Reply { .. }) => return Err("a reply before any call".into()),
                    Err(CallError::Died(e)) => return Err(describe(&e)),
                    Err(CallError::Timeout) => return Err("no answer".into()),
                }
            }
        };
        match tokio::time::timeout(within, ready).await {
            Ok(Ok(())) => Ok(worker),
            Ok(Err(why)) => Err(format!("the Function worker did not start: {why}")),
            Err(_) => Err(format!(
                "the Function worker did not start within {within:?}"
            )),
        }
    }

    async fn send(&mut self, message: &Value) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(message).expect("JSON serialises");
        line.push(b'\n');
        self.stdin.write_all(&line).await?;
        self.stdin.flush().await
    }

    async fn next_line(&mut self) -> Result<Line, CallError> {
        loop {
            match read_line(&mut self.out, MAX_LINE).await {
                // The runner starts each message on a new line.
                Ok(Some((text, _))) if text.is_empty() => {}
                Ok(Some((_, true))) => {
                    return Err(CallError::Died(json!({
                        "name": "Error",
                        "message": format!("the Function's worker sent a line over {MAX_LINE} bytes"),
                    })));
                }
                Ok(Some((text, false))) => match serde_json::from_slice::<Line>(&text) {
                    Ok(line) => return Ok(line),
                    Err(e) => {
                        tracing::warn!(target: "sigil::function", error = %e, "a line from a Function worker is not understood");
                    }
                },
                Ok(None) | Err(_) => {
                    let status = match self.process.as_mut() {
                        Some((child, _)) => {
                            tokio::time::timeout(Duration::from_secs(1), child.wait())
                                .await
                                .ok()
                                .and_then(Result::ok)
                        }
                        None => None,
                    };
                    let why = match status {
                        Some(s) => format!("the Function's worker ended ({s})"),
                        None => "the Function's worker closed its output".to_owned(),
                    };
                    return Err(CallError::Died(json!({"name": "Error", "message": why})));
                }
            }
        }
    }

    /// Runs one call: `file` with `event` and `context`; lines it logs go to `log`.
    pub async fn call(
        &mut self,
        path: &str,
        file: &Path,
        event: Value,
        context: Value,
        timeout: Duration,
        log: &mut (dyn FnMut(&str, String) + Send),
    ) -> Result<Reply, CallError> {
        let id = self.next_id;
        self.next_id += 1;
        let message = json!({
            "type": "call",
            "id": id,
            "path": path,
            "file": file.display().to_string(),
            "event": event,
            "context": context,
        });
        let run = async {
            if let Err(e) = self.send(&message).await {
                return Err(CallError::Died(
                    json!({"name": "Error", "message": format!("the Function's worker cannot be written to: {e}")}),
                ));
            }
            loop {
                match self.next_line().await? {
                    Line::Reply { id: got, reply } if got == id => return Ok(reply),
                    Line::Fatal { error, .. } => return Err(CallError::Died(error)),
                    Line::Log { level, message, .. } => log(&level, message),
                    // A late reply to an earlier call (never: calls are one at a time).
                    Line::Reply { .. } | Line::Ready => {}
                }
            }
        };
        let result = match tokio::time::timeout(timeout, run).await {
            Ok(r) => r,
            Err(_) => Err(CallError::Timeout),
        };
        self.idle_since = Instant::now();
        result
    }

    /// Ends the process now (see [`Worker`]'s `Drop`).
    pub fn kill(self) {}
}

/// The next line from `r`, without its newline, and whether it was longer than `max` (then
/// only `max` bytes are kept and the rest is passed over); `None` at the end.
async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
    max: usize,
) -> std::io::Result<Option<(Vec<u8>, bool)>> {
    let (mut line, mut cut) = (Vec::new(), false);
    loop {
        let buf = r.fill_buf().await?;
        if buf.is_empty() {
            return Ok((!line.is_empty() || cut).then_some((line, cut)));
        }
        let (take, done) = match memchr::memchr(b'\n', buf) {
            Some(i) => (i, true),
            None => (buf.len(), false),
        };
        let room = max.saturating_sub(line.len());
        line.extend_from_slice(&buf[..take.min(room)]);
        cut |= take > room;
        r.consume(if done { take + 1 } else { take });
        if done {
            return Ok(Some((line, cut)));
        }
    }
}

/// `name: message` of a runner's error object.
pub fn describe(error: &Value) -> String {
    let name = error.get("name").and_then(Value::as_str).unwrap_or("Error");
    let message = error.get("message").and_then(Value::as_str).unwrap_or("");
    format!("{name}: {message}")
}
