//! Bounded HTTP probes for triage: a timeout per request, transient failures (5xx, 429, 408,
//! connect errors, timeouts) retried a bounded number of times with jittered exponential
//! backoff, and a persistent transient failure reported as unknown, never as absent.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::header::{ACCEPT, AUTHORIZATION, RANGE, WWW_AUTHENTICATE};
use reqwest::{Method, RequestBuilder, StatusCode};

use super::TriageOptions;

/// Bodies larger than this are truncated (raw source files and index pages are far smaller).
const MAX_BODY: usize = 8 * 1024 * 1024;

/// Manifest media types a registry may answer with.
const MANIFEST_TYPES: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json";

/// What a probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HttpOutcome {
    /// 2xx; the body when it was asked for.
    Ok { status: u16, body: Option<String> },
    /// 404, 410 or 403 (S3 answers 403 for a missing key).
    Absent { status: u16 },
    /// Not decided: transient failures that persisted, or an unexpected answer.
    Unknown { why: String },
}

enum Raw {
    Done(HttpOutcome),
    Unauthorized(Option<String>),
}

/// The HTTP client of one triage run.
pub(crate) struct Http {
    client: reqwest::Client,
    retries: u32,
    backoff: Duration,
    tokens: tokio::sync::Mutex<HashMap<String, String>>,
}

impl Http {
    pub(crate) fn new(opts: &TriageOptions) -> Result<Http, String> {
        let client = reqwest::Client::builder()
            .timeout(opts.http_timeout)
            .connect_timeout(opts.http_timeout)
            .user_agent(concat!("perf-runner-triage/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Http {
            client,
            retries: opts.retries.min(10),
            backoff: opts.retry_backoff,
            tokens: tokio::sync::Mutex::default(),
        })
    }

    /// GET with the body.
    pub(crate) async fn get(&self, url: &str) -> HttpOutcome {
        self.done(self.send(|| self.client.get(url), true).await)
    }

    /// HEAD (falling back to a one-byte ranged GET where HEAD is not allowed).
    pub(crate) async fn head(&self, url: &str) -> HttpOutcome {
        match self.done(self.send(|| self.client.head(url), false).await) {
            HttpOutcome::Unknown { why }
                if why.contains("HTTP 405") || why.contains("HTTP 501") =>
            {
                self.done(
                    self.send(|| self.client.get(url).header(RANGE, "bytes=0-0"), false)
                        .await,
                )
            }
            other => other,
        }
    }

    /// HEAD of a registry manifest, with the anonymous bearer-token exchange of the Docker
    /// registry protocol when the registry asks for it (public ECR does).
    pub(crate) async fn manifest(&self, url: &str) -> HttpOutcome {
        let build = |token: Option<&str>| {
            let mut rb = self
                .client
                .request(Method::HEAD, url)
                .header(ACCEPT, MANIFEST_TYPES);
            if let Some(t) = token {
                rb = rb.header(AUTHORIZATION, format!("Bearer {t}"));
            }
            rb
        };
        // Tokens are per repository: one exchange serves every commit's manifest.
        let key = repository(url).unwrap_or(url).to_string();
        let cached = self.tokens.lock().await.get(&key).cloned();
        let challenge = match self.send(|| build(cached.as_deref()), false).await {
            Raw::Done(o) => return o,
            Raw::Unauthorized(c) => c,
        };
        let token = {
            // Held across the exchange, so concurrent probes wait for one token.
            let mut tokens = self.tokens.lock().await;
            match tokens.get(&key).filter(|t| Some(*t) != cached.as_ref()) {
                Some(t) => t.clone(),
                None => match self.token(url, challenge.as_deref()).await {
                    Some(t) => {
                        tokens.insert(key, t.clone());
                        t
                    }
                    None => {
                        return HttpOutcome::Unknown {
                            why: "HTTP 401 and no usable bearer-token challenge".into(),
                        };
                    }
                },
            }
        };
        self.done(self.send(|| build(Some(&token)), false).await)
    }

    async fn token(&self, url: &str, challenge: Option<&str>) -> Option<String> {
        let challenge = challenge?;
        let rest = challenge.trim().strip_prefix("Bearer")?.trim();
        let mut params: HashMap<String, String> = HashMap::new();
        for part in rest.split(',') {
            if let Some((k, v)) = part.split_once('=') {
                params.insert(
                    k.trim().to_ascii_lowercase(),
                    v.trim().trim_matches('"').to_string(),
                );
            }
        }
        let realm = params.get("realm")?;
        let repo = repository(url)?;
        let mut q = vec![("scope", format!("repository:{repo}:pull"))];
        if let Some(s) = params.get("service") {
            q.push(("service", s.clone()));
        }
        let outcome = self.done(self.send(|| self.client.get(realm).query(&q), true).await);
        let HttpOutcome::Ok {
            body: Some(body), ..
        } = outcome
        else {
            return None;
        };
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        v.get("token")
            .or_else(|| v.get("access_token"))
            .and_then(|t| t.as_str())
            .map(str::to_string)
    }

    fn done(&self, raw: Raw) -> HttpOutcome {
        match raw {
            Raw::Done(o) => o,
            Raw::Unauthorized(_) => HttpOutcome::Unknown {
                why: "HTTP 401 (authentication required)".into(),
            },
        }
    }

    async fn send(&self, build: impl Fn() -> RequestBuilder, want_body: bool) -> Raw {
        let attempts = self.retries + 1;
        let mut last = String::new();
        for attempt in 0..attempts {
            if attempt > 0 {
                tokio::time::sleep(self.delay(attempt)).await;
            }
            match build().send().await {
                Ok(resp) => {
                    let status = resp.status();
                    if status.is_success() {
                        if !want_body {
                            return Raw::Done(HttpOutcome::Ok {
                                status: status.as_u16(),
                                body: None,
                            });
                        }
                        match read_body(resp).await {
                            Ok(body) => {
                                return Raw::Done(HttpOutcome::Ok {
                                    status: status.as_u16(),
                                    body: Some(body),
                                });
                            }
                            Err(e) => last = format!("reading the body failed: {e}"),
                        }
                    } else if matches!(status.as_u16(), 403 | 404 | 410) {
                        return Raw::Done(HttpOutcome::Absent {
                            status: status.as_u16(),
                        });
                    } else if status == StatusCode::UNAUTHORIZED {
                        let c = resp.headers().get(WWW_AUTHENTICATE);
                        return Raw::Unauthorized(
                            c.and_then(|v| v.to_str().ok()).map(str::to_string),
                        );
                    } else if status.is_server_error() || matches!(status.as_u16(), 408 | 429) {
                        last = format!("HTTP {}", status.as_u16());
                    } else {
                        return Raw::Done(HttpOutcome::Unknown {
                            why: format!("unexpected HTTP {}", status.as_u16()),
                        });
                    }
                }
                Err(e) if e.is_timeout() || e.is_connect() || e.is_request() || e.is_body() => {
                    last = format!(
                        "{}: {e}",
                        if e.is_timeout() {
                            "timeout"
                        } else {
                            "connection"
                        }
                    );
                }
                Err(e) => return Raw::Done(HttpOutcome::Unknown { why: e.to_string() }),
            }
        }
        Raw::Done(HttpOutcome::Unknown {
            why: format!("{last} after {attempts} attempt(s)"),
        })
    }

    /// Backoff before retry `attempt` (≥ 1): base × 2^(attempt-1), plus up to 50 % jitter.
    fn delay(&self, attempt: u32) -> Duration {
        let base = self.backoff.saturating_mul(1u32 << (attempt - 1).min(16));
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        base + base.mul_f64(f64::from(nanos % 500) / 1000.0)
    }
}

/// The repository of a registry manifest URL (`…/v2/<repo>/manifests/<ref>`).
fn repository(url: &str) -> Option<&str> {
    Some(url.split_once("/v2/")?.1.rsplit_once("/manifests/")?.0)
}

async fn read_body(mut resp: reqwest::Response) -> Result<String, reqwest::Error> {
    let mut buf = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        let room = MAX_BODY.saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if room <= chunk.len() {
            break;
        }
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}
