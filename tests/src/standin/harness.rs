//! Running a stand-in server from tests: a free loopback port, a child in its own process group
//! with its output in files, a readiness wait (HTTP probe AND process alive AND deadline), and
//! cleanup on drop.

use super::config::{CONFIG_ENV, StandinConfig};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A port that was free on 127.0.0.1 a moment ago (bound to port 0, then released).
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// `GET path` on 127.0.0.1:`port` with `Connection: close`; returns the status and the body.
pub fn http_get(port: u16, path: &str, timeout: Duration) -> io::Result<(u16, String)> {
    http_request(port, "GET", path, None, timeout)
}

/// One HTTP/1.1 request with `Connection: close` to 127.0.0.1:`port` (a JSON `body` if any);
/// returns the status and the raw body (chunked framing, if any, left as is).
pub fn http_request(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&str>,
    timeout: Duration,
) -> io::Result<(u16, String)> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    if let Some(b) = body {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body.unwrap_or(""));
    s.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no HTTP status line"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// A stand-in OpenAI-compatible server on 127.0.0.1, killed (whole process group) on drop.
#[derive(Debug)]
pub struct StandinServer {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    status: Option<ExitStatus>,
}

impl StandinServer {
    /// Starts `program -m vllm.entrypoints.openai.api_server --host 127.0.0.1 --port P --model
    /// MODEL EXTRA…`. `program` is the stand-in binary or a venv's `python`. With `Some(config)`
    /// the config is written to a temp file named by `VLLM_STANDIN_CONFIG`; with `None` that
    /// variable is removed, so the build's own `standin-config.json` applies. Does not wait; see
    /// [`StandinServer::wait_ready`].
    pub fn start(
        program: &Path,
        config: Option<&StandinConfig>,
        model: &str,
        extra: &[&str],
    ) -> io::Result<StandinServer> {
        let dir = tempfile::tempdir()?;
        let port = free_port()?;
        let mut cmd = Command::new(program);
        cmd.args([
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--host",
            "127.0.0.1",
        ])
        .args(["--port", &port.to_string(), "--model", model])
        .args(extra);
        match config {
            Some(c) => {
                let config_path = dir.path().join("standin-config.json");
                std::fs::write(&config_path, c.to_json())?;
                cmd.env(CONFIG_ENV, &config_path);
            }
            None => {
                cmd.env_remove(CONFIG_ENV);
            }
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.path().join("stdout.txt"))?)
            .stderr(std::fs::File::create(dir.path().join("stderr.txt"))?)
            .process_group(0)
            .spawn()?;
        Ok(StandinServer {
            child,
            port,
            dir,
            status: None,
        })
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's process id (also its process group id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A scratch folder that lives as long as the server (logs are kept there).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Waits until `GET /health` answers 200, failing at once when the process exits and after
    /// `timeout` otherwise.
    pub fn wait_ready(&mut self, timeout: Duration) -> io::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.try_status()? {
                let msg = format!(
                    "stand-in server exited ({st}) before ready:\n{}",
                    self.stderr_text()
                );
                return Err(io::Error::other(msg));
            }
            if let Ok((200, _)) = http_get(self.port, "/health", Duration::from_millis(250)) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "stand-in server not ready",
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The exit status if the process has ended.
    pub fn try_status(&mut self) -> io::Result<Option<ExitStatus>> {
        if self.status.is_none() {
            self.status = self.child.try_wait()?;
        }
        Ok(self.status)
    }

    /// Sends a signal (e.g. `libc::SIGTERM`) to the server process.
    pub fn signal(&self, sig: i32) -> io::Result<()> {
        let pid = i32::try_from(self.child.id()).map_err(io::Error::other)?;
        // SAFETY: kill(2) has no memory-safety preconditions.
        if unsafe { libc::kill(pid, sig) } == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> io::Result<Option<ExitStatus>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.try_status()? {
                return Ok(Some(st));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// What the server wrote on stdout so far (uvicorn's access log).
    pub fn stdout_text(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stdout.txt")).unwrap_or_default()
    }

    /// What the server wrote on stderr so far (engine and uvicorn logs, tracebacks).
    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.txt")).unwrap_or_default()
    }
}

impl Drop for StandinServer {
    fn drop(&mut self) {
        if self.status.is_none() {
            if let Ok(pgid) = i32::try_from(self.child.id()) {
                // SAFETY: kill(2) has no memory-safety preconditions; the group is our child's.
                unsafe { libc::kill(-pgid, libc::SIGKILL) };
            }
            let _ = self.child.wait();
        }
    }
}

/// What a finished (or timed-out) stand-in command left.
#[derive(Debug, Clone)]
pub struct Finished {
    /// The exit code; `None` when a signal ended it (or it timed out and was killed).
    pub code: Option<i32>,
    /// Everything it wrote on stdout.
    pub stdout: String,
    /// Everything it wrote on stderr.
    pub stderr: String,
    /// Whether it ran past the timeout (then it was killed).
    pub timed_out: bool,
}

/// Runs `program ARGS…` to completion (killing its process group after `timeout`), with
/// `config` written to a temp file named by `VLLM_STANDIN_CONFIG` (`None`: variable removed).
pub fn run_standin(
    program: &Path,
    config: Option<&StandinConfig>,
    args: &[&str],
    timeout: Duration,
) -> io::Result<Finished> {
    let dir = tempfile::tempdir()?;
    let mut cmd = Command::new(program);
    cmd.args(args);
    match config {
        Some(c) => {
            let path = dir.path().join("standin-config.json");
            std::fs::write(&path, c.to_json())?;
            cmd.env(CONFIG_ENV, path);
        }
        None => {
            cmd.env_remove(CONFIG_ENV);
        }
    }
    let (out, err) = (dir.path().join("stdout.txt"), dir.path().join("stderr.txt"));
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out)?)
        .stderr(std::fs::File::create(&err)?)
        .process_group(0)
        .spawn()?;
    let deadline = Instant::now() + timeout;
    let (status, timed_out) = loop {
        if let Some(st) = child.try_wait()? {
            break (Some(st), false);
        }
        if Instant::now() >= deadline {
            if let Ok(pgid) = i32::try_from(child.id()) {
                // SAFETY: kill(2) has no memory-safety preconditions; the group is our child's.
                unsafe { libc::kill(-pgid, libc::SIGKILL) };
            }
            break (child.wait().ok(), true);
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Ok(Finished {
        code: status.and_then(|s| s.code()),
        stdout: std::fs::read_to_string(out).unwrap_or_default(),
        stderr: std::fs::read_to_string(err).unwrap_or_default(),
        timed_out,
    })
}
