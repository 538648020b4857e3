//! vLLM's sleep mode, as its development endpoints show it: a server started with
//! `--enable-sleep-mode` and `VLLM_SERVER_DEV_MODE=1` serves `POST /sleep?level=N`,
//! `POST /wake_up` and `GET /is_sleeping`. Falling asleep and waking cost the build's
//! `sleep_ms`/`wake_ms`; the log says what sleep freed. Without the environment variable the
//! routes are not there (404); without the flag, sleeping is refused. A sleeping engine answers
//! generation requests with 503. The `die_asleep` fault ends the process while it sleeps.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use perf_runner_tests::standin::{Fault, StandinConfig};
use serde_json::json;

use crate::logs::log;
use crate::openai::error_body;

/// The environment variable that turns on vLLM's development endpoints.
pub const DEV_MODE_ENV: &str = "VLLM_SERVER_DEV_MODE";

/// A server's sleep state.
#[derive(Debug, Default)]
pub struct Sleep {
    /// `--enable-sleep-mode` was given (and the build has sleep mode).
    pub enabled: bool,
    /// The development endpoints are served.
    pub dev_mode: bool,
    /// Asleep now.
    pub asleep: AtomicBool,
    /// Times it fell asleep.
    pub sleeps: AtomicU64,
}

impl Sleep {
    /// The state of a server started with (`flag`) or without `--enable-sleep-mode`.
    pub fn new(flag: bool) -> Sleep {
        let dev = std::env::var(DEV_MODE_ENV)
            .map(|v| matches!(v.trim(), "1" | "true" | "True"))
            .unwrap_or(false);
        Sleep {
            enabled: flag,
            dev_mode: dev,
            ..Sleep::default()
        }
    }

    /// Whether generation is refused now.
    pub fn is_asleep(&self) -> bool {
        self.asleep.load(Ordering::SeqCst)
    }
}

/// The answer to a sleep-mode route, or `None` when `path` is not one (or the routes are off).
pub async fn route(
    method: &str,
    path: &str,
    sleep: &Sleep,
    cfg: &StandinConfig,
    served: u64,
) -> Option<(u16, String)> {
    if !sleep.dev_mode || !matches!(path, "/sleep" | "/wake_up" | "/is_sleeping") {
        return None;
    }
    let old = cfg.old_format;
    Some(match (method, path) {
        ("GET", "/is_sleeping") => (200, json!({"is_sleeping": sleep.is_asleep()}).to_string()),
        ("POST", "/sleep") if !sleep.enabled => (
            500,
            error_body(
                500,
                "Sleep mode is not enabled. Please run with --enable-sleep-mode.",
            ),
        ),
        ("POST", "/sleep") => {
            if !sleep.asleep.swap(true, Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(cfg.sleep_ms)).await;
                sleep.sleeps.fetch_add(1, Ordering::SeqCst);
                log(
                    "INFO",
                    "gpu_worker.py:104",
                    "Sleep mode freed 61.13 GiB memory, 1.75 GiB memory is still in use.",
                    old,
                );
                log(
                    "INFO",
                    "executor_base.py:214",
                    &format!(
                        "It took {:.6} seconds to fall asleep.",
                        cfg.sleep_ms as f64 / 1000.0
                    ),
                    old,
                );
                if cfg.fault == Some(Fault::DieAsleep) && served >= cfg.fault_after {
                    tokio::spawn(async {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        crate::logs::err(
                            "ERROR 01-21 02:29:49 [core.py:700] EngineCore encountered a fatal error.\nRuntimeError: CUDA error: an illegal memory access was encountered",
                        );
                        std::process::exit(1);
                    });
                }
            }
            (200, String::new())
        }
        ("POST", "/wake_up") => {
            if sleep.asleep.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(cfg.wake_ms)).await;
                sleep.asleep.store(false, Ordering::SeqCst);
                log(
                    "INFO",
                    "executor_base.py:230",
                    &format!(
                        "It took {:.6} seconds to wake up tags {{'weights', 'kv_cache'}}.",
                        cfg.wake_ms as f64 / 1000.0
                    ),
                    old,
                );
            }
            (200, String::new())
        }
        _ => (405, json!({"detail": "Method Not Allowed"}).to_string()),
    })
}
