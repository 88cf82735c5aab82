//! Process-level test helpers: run the example binaries, find free ports, small HTTP calls.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Path of a built example (cargo test builds examples).
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let p = dir.join("examples").join(name);
    assert!(
        p.exists(),
        "{} is not built (cargo test builds examples)",
        p.display()
    );
    p
}

/// Default ports of every profile, before the offset.
pub const BASE_PORTS: [u16; 9] = [9763, 9611, 8280, 8243, 8099, 9099, 9901, 9443, 9711];

/// A port offset whose ports are all free right now, not in `taken`. Offsets are 2,000 apart,
/// more than the span of the base ports (8099..9901), so two profiles never share a port.
pub fn free_offset(taken: &[u16]) -> u16 {
    let seed = (std::process::id() % 17) as u16;
    for i in 0..17u16 {
        let o = 20_000 + ((seed + i) % 17) * 2_000;
        if taken.contains(&o) {
            continue;
        }
        if BASE_PORTS
            .iter()
            .all(|p| TcpListener::bind(("0.0.0.0", p + o)).is_ok())
        {
            return o;
        }
    }
    panic!("no free port offset");
}

/// A child process killed on drop.
pub struct Proc {
    pub child: Child,
    pub name: String,
}

impl Proc {
    /// Starts an example with args and env; waits for its first stdout line (the ready line).
    pub fn start(name: &str, args: &[String], env: &[(String, String)]) -> (Proc, String) {
        let mut cmd = Command::new(example(name));
        cmd.args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .env("RUST_LOG", "warn");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("start {name}: {e}"));
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut p = Proc {
            child,
            name: name.to_owned(),
        };
        match rx.recv_timeout(Duration::from_secs(90)) {
            Ok(line) => (p, line),
            Err(_) => {
                let status = p.child.try_wait().ok().flatten();
                panic!("{name} printed no ready line within 90 s (exit status {status:?})");
            }
        }
    }

    /// Kills the process (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs a bash snippet; returns stdout, panicking with both streams on failure.
pub fn sh(script: &str) -> String {
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("set -euo pipefail\n{script}"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "script failed:\n{script}\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}
