//! A small real HTTP/1.1 client for the benchmark: one connection per request (by IP, no DNS),
//! Content-Length, chunked or close-delimited bodies, and server-sent events timed on arrival.
//! Error texts follow aiohttp's, as vLLM's benchmark records them.

use std::net::SocketAddr;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Where requests go.
#[derive(Debug, Clone)]
pub struct Target {
    /// The server's address.
    pub addr: SocketAddr,
    /// The `Host` header (as the user wrote the host).
    pub host: String,
}

/// A failed request, with aiohttp-like text.
#[derive(Debug, Clone)]
pub enum ClientError {
    /// No connection (refused, unreachable).
    Connect(String),
    /// A non-200 answer: its reason phrase (what vLLM's client records).
    Status(String),
    /// The connection broke before the response was complete.
    Payload(String),
}

impl ClientError {
    /// The text vLLM's benchmark stores as the request's error.
    pub fn text(&self) -> String {
        match self {
            ClientError::Connect(t) | ClientError::Payload(t) => t.clone(),
            ClientError::Status(reason) => reason.clone(),
        }
    }
}

fn connect_error(t: &Target, e: &std::io::Error) -> ClientError {
    let (ip, port) = (t.addr.ip(), t.addr.port());
    let errno = e.raw_os_error().unwrap_or(111);
    ClientError::Connect(format!(
        "Traceback (most recent call last):\n  ...\nConnectionRefusedError: [Errno {errno}] Connect call failed ('{ip}', {port})\n\n\
         The above exception was the direct cause of the following exception:\n\n\
         aiohttp.client_exceptions.ClientConnectorError: Cannot connect to host {}:{port} ssl:default [Connect call failed ('{ip}', {port})]",
        t.host
    ))
}

fn payload_error() -> ClientError {
    ClientError::Payload(
        "aiohttp.client_exceptions.ClientPayloadError: Response payload is not completed: \
         <TransferEncodingError: 400, message='Not enough data for satisfy transfer length header.'>"
            .to_string(),
    )
}

/// Incremental decoder of a response body.
enum Body {
    Length(usize),
    Chunked { state: ChunkState, pending: Vec<u8> },
    UntilClose,
}

enum ChunkState {
    Size,
    Data(usize),
    DataEnd,
    Done,
}

impl Body {
    /// Feeds raw bytes, appends decoded ones to `out`; true once the body is complete.
    fn feed(&mut self, raw: &[u8], out: &mut Vec<u8>) -> Result<bool, ClientError> {
        match self {
            Body::Length(left) => {
                let take = raw.len().min(*left);
                out.extend_from_slice(&raw[..take]);
                *left -= take;
                Ok(*left == 0)
            }
            Body::UntilClose => {
                out.extend_from_slice(raw);
                Ok(false)
            }
            Body::Chunked { state, pending } => {
                pending.extend_from_slice(raw);
                let mut pos = 0;
                loop {
                    match state {
                        ChunkState::Done => return Ok(true),
                        ChunkState::Size => {
                            let Some(nl) = pending[pos..].windows(2).position(|w| w == b"\r\n")
                            else {
                                break;
                            };
                            let line = String::from_utf8_lossy(&pending[pos..pos + nl]).to_string();
                            let hex = line.split(';').next().unwrap_or("").trim();
                            let size =
                                usize::from_str_radix(hex, 16).map_err(|_| payload_error())?;
                            pos += nl + 2;
                            *state = if size == 0 {
                                ChunkState::Done
                            } else {
                                ChunkState::Data(size)
                            };
                        }
                        ChunkState::Data(left) => {
                            let take = (pending.len() - pos).min(*left);
                            if take == 0 {
                                break;
                            }
                            out.extend_from_slice(&pending[pos..pos + take]);
                            pos += take;
                            *left -= take;
                            if *left == 0 {
                                *state = ChunkState::DataEnd;
                            }
                        }
                        ChunkState::DataEnd => {
                            if pending.len() - pos < 2 {
                                break;
                            }
                            pos += 2;
                            *state = ChunkState::Size;
                        }
                    }
                }
                pending.drain(..pos);
                Ok(matches!(state, ChunkState::Done))
            }
        }
    }
}

/// Sends one request and reads the response; each server-sent event's `data` goes to `on_event`
/// with its arrival time. Returns the whole (decoded) body for non-event responses.
pub async fn request(
    t: &Target,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
    mut on_event: impl FnMut(&str, Instant),
) -> Result<Vec<u8>, ClientError> {
    let mut s = TcpStream::connect(t.addr)
        .await
        .map_err(|e| connect_error(t, &e))?;
    let _ = s.set_nodelay(true);
    let mut msg = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: vllm-standin-bench\r\nAccept: */*\r\n",
        t.host
    );
    if let Some(b) = body {
        msg.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    msg.push_str("Connection: close\r\n\r\n");
    let mut bytes = msg.into_bytes();
    bytes.extend_from_slice(body.unwrap_or(&[]));
    s.write_all(&bytes).await.map_err(|_| payload_error())?;

    let mut buf = vec![0u8; 16 * 1024];
    let mut head = Vec::new();
    let header_end = loop {
        let n = s.read(&mut buf).await.map_err(|_| payload_error())?;
        if n == 0 {
            return Err(ClientError::Payload(
                "aiohttp.client_exceptions.ServerDisconnectedError: Server disconnected".into(),
            ));
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(p) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        if head.len() > 64 * 1024 {
            return Err(payload_error());
        }
    };
    let head_text = String::from_utf8_lossy(&head[..header_end]).to_string();
    let mut lines = head_text.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let code: u16 = parts
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(payload_error)?;
    let reason = parts.next().unwrap_or("").to_string();
    let mut framing = Body::UntilClose;
    let mut is_events = false;
    for l in lines {
        let Some((n, v)) = l.split_once(':') else {
            continue;
        };
        let (n, v) = (n.trim().to_ascii_lowercase(), v.trim().to_ascii_lowercase());
        if n == "transfer-encoding" && v.contains("chunked") {
            framing = Body::Chunked {
                state: ChunkState::Size,
                pending: Vec::new(),
            };
        } else if n == "content-length" && !matches!(framing, Body::Chunked { .. }) {
            framing = Body::Length(v.parse().map_err(|_| payload_error())?);
        } else if n == "content-type" && v.starts_with("text/event-stream") {
            is_events = true;
        }
    }
    let mut decoded = Vec::new();
    let mut events = Vec::new();
    let mut raw = head[header_end + 4..].to_vec();
    let mut done = framing.feed(&raw, &mut decoded)? || matches!(framing, Body::Length(0));
    loop {
        if is_events {
            let now = Instant::now();
            events.extend_from_slice(&decoded);
            decoded.clear();
            while let Some(p) = events.windows(2).position(|w| w == b"\n\n") {
                let ev = String::from_utf8_lossy(&events[..p]).to_string();
                events.drain(..p + 2);
                for line in ev.lines() {
                    if let Some(data) = line.strip_prefix("data:") {
                        on_event(data.trim(), now);
                    }
                }
            }
        }
        if done {
            break;
        }
        let n = s.read(&mut buf).await.map_err(|_| payload_error())?;
        if n == 0 {
            if matches!(framing, Body::UntilClose) {
                break;
            }
            return Err(payload_error());
        }
        raw.clear();
        raw.extend_from_slice(&buf[..n]);
        done = framing.feed(&raw, &mut decoded)?;
    }
    if code != 200 {
        return Err(ClientError::Status(reason));
    }
    Ok(decoded)
}
