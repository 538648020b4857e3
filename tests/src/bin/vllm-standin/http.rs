//! Minimal HTTP/1.1 for the server side: request parsing (Content-Length bodies, keep-alive) and
//! responses shaped like uvicorn's (chunked transfer encoding for streams).

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 64 * 1024 * 1024;

/// One HTTP request.
#[derive(Debug)]
pub struct Request {
    /// `GET`, `POST` …
    pub method: String,
    /// The path without the query string.
    pub path: String,
    /// `HTTP/1.1` or `HTTP/1.0`.
    pub version: String,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body (Content-Length framed).
    pub body: Vec<u8>,
}

impl Request {
    /// A header's value (name in lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the connection stays open after the response.
    pub fn keep_alive(&self) -> bool {
        let conn = self.header("connection").unwrap_or("").to_ascii_lowercase();
        if self.version == "HTTP/1.0" {
            conn == "keep-alive"
        } else {
            conn != "close"
        }
    }
}

/// Why a request could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// The peer closed the connection (or it broke): just drop it.
    Closed,
    /// A malformed request: answer 400 with this message, then close.
    Bad(String),
}

/// Reads one request; `Ok(None)` when the peer closed the connection between requests.
pub async fn read_request<R: AsyncBufRead + Unpin>(
    r: &mut R,
) -> Result<Option<Request>, ReadError> {
    let mut head = Vec::new();
    let mut lines: Vec<String> = Vec::new();
    loop {
        let mut line = Vec::new();
        let n = r
            .read_until(b'\n', &mut line)
            .await
            .map_err(|_| ReadError::Closed)?;
        if n == 0 {
            return if head.is_empty() {
                Ok(None)
            } else {
                Err(ReadError::Closed)
            };
        }
        head.extend_from_slice(&line);
        if head.len() > MAX_HEAD {
            return Err(ReadError::Bad("request head too large".into()));
        }
        let text = String::from_utf8_lossy(&line)
            .trim_end_matches(['\r', '\n'])
            .to_string();
        if text.is_empty() {
            if lines.is_empty() {
                continue; // tolerate stray CRLF between requests
            }
            break;
        }
        lines.push(text);
    }
    let mut parts = lines[0].split_whitespace();
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(ReadError::Bad("Invalid HTTP request line".into()));
    };
    let path = target.split('?').next().unwrap_or(target).to_string();
    let mut headers = Vec::new();
    for l in &lines[1..] {
        let Some((n, v)) = l.split_once(':') else {
            return Err(ReadError::Bad("Invalid HTTP header".into()));
        };
        headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let mut req = Request {
        method: method.to_string(),
        path,
        version: version.to_string(),
        headers,
        body: Vec::new(),
    };
    if req
        .header("transfer-encoding")
        .is_some_and(|t| t.to_ascii_lowercase().contains("chunked"))
    {
        return Err(ReadError::Bad(
            "chunked request bodies are not supported".into(),
        ));
    }
    let len = match req.header("content-length") {
        None => 0,
        Some(v) => v
            .trim()
            .parse::<usize>()
            .map_err(|_| ReadError::Bad("Invalid Content-Length".into()))?,
    };
    if len > MAX_BODY {
        return Err(ReadError::Bad("request body too large".into()));
    }
    req.body = vec![0; len];
    r.read_exact(&mut req.body)
        .await
        .map_err(|_| ReadError::Closed)?;
    Ok(Some(req))
}

/// The reason phrase of a status code.
pub fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

fn date_header() -> String {
    let (y, mo, d, h, mi, s) = crate::logs::utc_now();
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02} GMT")
}

/// Writes a complete response with a Content-Length body.
pub async fn write_response<W: AsyncWrite + Unpin>(
    w: &mut W,
    code: u16,
    content_type: &str,
    body: &[u8],
    keep_alive: bool,
) -> std::io::Result<()> {
    let conn = if keep_alive {
        ""
    } else {
        "connection: close\r\n"
    };
    let head = format!(
        "HTTP/1.1 {code} {}\r\ndate: {}\r\nserver: uvicorn\r\ncontent-length: {}\r\n\
         content-type: {content_type}\r\n{conn}\r\n",
        reason(code),
        date_header(),
        body.len()
    );
    let mut buf = head.into_bytes();
    buf.extend_from_slice(body);
    w.write_all(&buf).await?;
    w.flush().await
}

/// Starts a chunked `text/event-stream` response.
pub async fn write_stream_head<W: AsyncWrite + Unpin>(w: &mut W) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 200 OK\r\ndate: {}\r\nserver: uvicorn\r\n\
         content-type: text/event-stream; charset=utf-8\r\ntransfer-encoding: chunked\r\n\r\n",
        date_header()
    );
    w.write_all(head.as_bytes()).await?;
    w.flush().await
}

/// Writes one chunk (an empty `data` ends the stream).
pub async fn write_chunk<W: AsyncWrite + Unpin>(w: &mut W, data: &[u8]) -> std::io::Result<()> {
    let mut buf = format!("{:x}\r\n", data.len()).into_bytes();
    buf.extend_from_slice(data);
    buf.extend_from_slice(b"\r\n");
    w.write_all(&buf).await?;
    w.flush().await
}
