//! Running the real agent: a configuration in a temporary directory, the process with piped
//! stdin/stdout, its feedback lines collected by a reader thread, and SIGKILL/SIGTERM.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::tallyman_bin;

/// A configuration with one stdin source and one file sink, in `dir`.
pub fn stdin_to_file_config(dir: &Path, workflow: &str, extra: &str) -> PathBuf {
    let data = dir.join("data");
    let text = format!(
        r#"[agent]
facility = "test"
gateway = "gw-test"
data_dir = "{data}"

[spool]
commit_window_ms = 2
{extra}

[[sources]]
name = "stdin"
type = "stdin"
workflow = "{workflow}"
location = "WH/Stock"

[[sinks]]
name = "outbox"
type = "file"
path = "outbox.jsonl"
"#,
        data = data.display()
    );
    let path = dir.join("tallyman.toml");
    std::fs::write(&path, text).expect("writing the test config");
    path
}

/// Feedback lines the agent printed, shared with the reader thread.
#[derive(Debug, Default)]
pub struct Feedback {
    pub lines: Vec<Value>,
    pub closed: bool,
}

/// A running `tallyman run`.
#[derive(Debug)]
pub struct Agent {
    child: Child,
    stdin: Option<ChildStdin>,
    pub feedback: Arc<(Mutex<Feedback>, Condvar)>,
    reader: Option<JoinHandle<()>>,
    pub stderr_log: PathBuf,
}

impl Agent {
    /// Start `tallyman run --config CONFIG`; stderr goes to `stderr_log` (appended).
    pub fn start(config: &Path, stderr_log: &Path) -> Agent {
        Agent::start_with(&tallyman_bin(), config, stderr_log)
    }

    /// [`Agent::start`] with another executable in front (a wrapper script such as strace).
    pub fn start_with(program: &Path, config: &Path, stderr_log: &Path) -> Agent {
        Agent::start_with_env(program, config, stderr_log, &[])
    }

    /// [`Agent::start_with`] with environment variables added (`NOTIFY_SOCKET`, …).
    pub fn start_with_env(
        program: &Path,
        config: &Path,
        stderr_log: &Path,
        env: &[(&str, &std::ffi::OsStr)],
    ) -> Agent {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(stderr_log)
            .expect("opening the agent log");
        let mut child = Command::new(program)
            .args(["run", "--config"])
            .arg(config)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("starting tallyman");
        let stdout = child.stdout.take().expect("piped stdout");
        let feedback: Arc<(Mutex<Feedback>, Condvar)> = Arc::default();
        let shared = Arc::clone(&feedback);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let value: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("feedback is not JSON: {line}: {e}"));
                let (m, cv) = &*shared;
                m.lock().expect("feedback lock").lines.push(value);
                cv.notify_all();
            }
            let (m, cv) = &*shared;
            m.lock().expect("feedback lock").closed = true;
            cv.notify_all();
        });
        let stdin = child.stdin.take();
        Agent {
            child,
            stdin,
            feedback,
            reader: Some(reader),
            stderr_log: stderr_log.into(),
        }
    }

    /// Write scans, one per line. A broken pipe (the agent was killed) is not an error here.
    pub fn send(&mut self, scans: &[String]) -> std::io::Result<()> {
        let stdin = self.stdin.as_mut().expect("stdin open");
        let mut buf = String::new();
        for s in scans {
            buf.push_str(s);
            buf.push('\n');
        }
        stdin.write_all(buf.as_bytes())?;
        stdin.flush()
    }

    /// Close stdin (end of input).
    pub fn close_stdin(&mut self) {
        self.stdin.take();
    }

    /// Wait until `cond` holds over the feedback so far, or the deadline passes (false).
    pub fn wait_feedback(&self, timeout: Duration, cond: impl Fn(&Feedback) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let (m, cv) = &*self.feedback;
        let mut fb = m.lock().expect("feedback lock");
        loop {
            if cond(&fb) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline || fb.closed {
                return cond(&fb);
            }
            fb = cv
                .wait_timeout(fb, deadline - now)
                .expect("feedback lock")
                .0;
        }
    }

    pub fn feedback_len(&self) -> usize {
        self.feedback.0.lock().expect("feedback lock").lines.len()
    }

    pub fn feedback_lines(&self) -> Vec<Value> {
        self.feedback.0.lock().expect("feedback lock").lines.clone()
    }

    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("pid fits")
    }

    /// SIGKILL and reap; returns the feedback printed before death.
    pub fn kill9(mut self) -> Vec<Value> {
        let _ = signal(self.pid(), "KILL");
        let _ = self.child.wait();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        self.feedback_lines()
    }

    /// SIGTERM and wait for the exit status, at most `timeout`.
    pub fn terminate(mut self, timeout: Duration) -> (Option<ExitStatus>, Vec<Value>) {
        let _ = signal(self.pid(), "TERM");
        let deadline = Instant::now() + timeout;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(s)) => break Some(s),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => {
                    let _ = signal(self.pid(), "KILL");
                    let _ = self.child.wait();
                    break None;
                }
            }
        };
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        (status, self.feedback_lines())
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = signal(self.pid(), "KILL");
            let _ = self.child.wait();
        }
    }
}

/// Send a signal with kill(1): the workspace forbids `unsafe`, and this is test support.
pub fn signal(pid: i32, sig: &str) -> std::io::Result<()> {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!("kill -{sig} {pid} failed")))
    }
}

/// The events of a JSON-lines outbox, by id (every complete line must be a whole JSON object;
/// the same id twice must be the same event). The agent may be writing while this reads, so a
/// last line without its newline is still being written and is left out.
pub fn read_outbox(path: &Path) -> HashMap<String, Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    let mut by_id = HashMap::new();
    for (n, line) in complete.lines().enumerate() {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("outbox line {} is not JSON: {e}: {line}", n + 1));
        let id = v["id"].as_str().expect("event id").to_string();
        if let Some(prev) = by_id.insert(id.clone(), v.clone()) {
            assert_eq!(prev, v, "event {id} written twice with different content");
        }
    }
    by_id
}
