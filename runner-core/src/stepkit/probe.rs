//! The readiness probe: `GET /health` over plain HTTP/1.1 answers 200. No proxy is consulted
//! and nothing but the status line is read.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::runtime::Endpoint;

/// Whether `GET /health` at `ep` answers 200 within `within`.
pub(super) async fn health_ok(ep: &Endpoint, within: Duration) -> bool {
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect((ep.host.as_str(), ep.port))
            .await
            .ok()?;
        let req = format!(
            "GET /health HTTP/1.1\r\nHost: {}:{}\r\nConnection: close\r\n\r\n",
            ep.host, ep.port
        );
        s.write_all(req.as_bytes()).await.ok()?;
        let mut buf = [0u8; 64];
        let mut n = 0;
        while n < 12 {
            let k = s.read(&mut buf[n..]).await.ok()?;
            if k == 0 {
                break;
            }
            n += k;
        }
        let head = String::from_utf8_lossy(&buf[..n]).to_string();
        Some(head.starts_with("HTTP/1.") && head.get(9..12) == Some("200"))
    };
    matches!(tokio::time::timeout(within, attempt).await, Ok(Some(true)))
}

/// `POST path` (no body) at `ep`: the status code it answered within `within`, or why none.
pub(super) async fn post(ep: &Endpoint, path: &str, within: Duration) -> Result<u16, String> {
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect((ep.host.as_str(), ep.port))
            .await
            .map_err(|e| format!("cannot connect to {}:{}: {e}", ep.host, ep.port))?;
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: {}:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            ep.host, ep.port
        );
        s.write_all(req.as_bytes())
            .await
            .map_err(|e| format!("cannot send POST {path}: {e}"))?;
        let mut buf = [0u8; 64];
        let mut n = 0;
        while n < 12 {
            let k = s
                .read(&mut buf[n..])
                .await
                .map_err(|e| format!("no answer to POST {path}: {e}"))?;
            if k == 0 {
                break;
            }
            n += k;
        }
        let head = String::from_utf8_lossy(&buf[..n]).to_string();
        head.get(9..12)
            .filter(|_| head.starts_with("HTTP/1."))
            .and_then(|c| c.parse::<u16>().ok())
            .ok_or_else(|| format!("POST {path}: not an HTTP answer"))
    };
    match tokio::time::timeout(within, attempt).await {
        Ok(r) => r,
        Err(_) => Err(format!("POST {path}: no answer within {within:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    async fn serve_once(status: &'static str) -> Endpoint {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            if let Ok((mut s, _)) = l.accept().await {
                let mut buf = [0u8; 256];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes())
                    .await;
            }
        });
        Endpoint {
            host: "127.0.0.1".into(),
            port,
        }
    }

    #[tokio::test]
    async fn only_a_200_is_healthy() {
        let second = Duration::from_secs(1);
        assert!(health_ok(&serve_once("200 OK").await, second).await);
        assert!(!health_ok(&serve_once("503 Service Unavailable").await, second).await);
        // Nothing listening.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let ep = Endpoint {
            host: "127.0.0.1".into(),
            port,
        };
        assert!(!health_ok(&ep, second).await);
        // Accepts but never answers: bounded by `within`.
        let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ep = Endpoint {
            host: "127.0.0.1".into(),
            port: silent.local_addr().unwrap().port(),
        };
        let t = std::time::Instant::now();
        assert!(!health_ok(&ep, Duration::from_millis(200)).await);
        assert!(t.elapsed() < Duration::from_secs(2));
    }
}
