//! `doctor --backend slurm`: read-only checks of the cluster (`sinfo`), the partition, its GPU
//! gres and the environments' cache dir.

use runner_core::Health;
use runner_core::backend::HealthCheck;
use tokio_util::sync::CancellationToken;

use crate::config::SlurmConfig;
use crate::sched;

/// What `sinfo` says of one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    /// Its name (`*` of the default one removed).
    pub name: String,
    /// Whether it is the default one.
    pub default: bool,
    /// `up` / `down` …
    pub avail: String,
    /// Its nodes' states.
    pub states: Vec<String>,
    /// Its nodes' gres (`gpu:h100:2`).
    pub gres: Vec<String>,
}

/// Parse `sinfo -h -o '%P|%a|%T|%G'`, one entry per partition.
pub fn partitions(text: &str) -> Vec<PartitionInfo> {
    let mut out: Vec<PartitionInfo> = Vec::new();
    for l in text.lines() {
        let f: Vec<&str> = l.trim().split('|').collect();
        let [p, avail, state, gres] = f[..] else {
            continue;
        };
        let default = p.ends_with('*');
        let name = p.trim_end_matches('*').to_string();
        let i = match out.iter().position(|x| x.name == name) {
            Some(i) => i,
            None => {
                out.push(PartitionInfo {
                    name,
                    default,
                    avail: avail.to_string(),
                    states: Vec::new(),
                    gres: Vec::new(),
                });
                out.len() - 1
            }
        };
        out[i].states.push(state.to_string());
        if gres != "(null)" && !out[i].gres.iter().any(|g| g == gres) {
            out[i].gres.push(gres.to_string());
        }
    }
    out
}

pub(crate) async fn health(cfg: &SlurmConfig) -> Health {
    let mut checks = Vec::new();
    let mut check = |name: &str, ok: bool, detail: String| {
        checks.push(HealthCheck {
            name: name.into(),
            ok,
            detail,
        });
        ok
    };
    let never = CancellationToken::new();
    let args: Vec<String> = ["-h", "-o", "%P|%a|%T|%G"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let sinfo = sched::run(cfg, "sinfo", &args, &never).await;
    let version = sched::run(cfg, "sinfo", &["--version".to_string()], &never)
        .await
        .ok()
        .map(|c| c.stdout.trim().to_string())
        .unwrap_or_default();
    let parts = match sinfo {
        Ok(c) if c.status.success() => {
            check("sinfo", true, version);
            partitions(&c.stdout)
        }
        Ok(c) => {
            check("sinfo", false, c.combined().trim().to_string());
            Vec::new()
        }
        Err(e) => {
            check("sinfo", false, e.message);
            Vec::new()
        }
    };
    let part = match &cfg.partition {
        Some(p) => parts.iter().find(|x| &x.name == p),
        None => parts.iter().find(|x| x.default),
    };
    let want = cfg.partition.clone().unwrap_or_else(|| "(default)".into());
    let part_ok = match part {
        Some(p) => check(
            "partition",
            p.avail == "up",
            format!("{} is {}; nodes {}", p.name, p.avail, p.states.join(", ")),
        ),
        None => check(
            "partition",
            false,
            format!(
                "{want} not found among {}",
                parts
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
    };
    let gpu_ok = if cfg.cpu_only {
        check(
            "gpus",
            true,
            "cpu_only = true: allocations without GPUs".into(),
        )
    } else {
        let gres: Vec<String> = part.map(|p| p.gres.clone()).unwrap_or_default();
        let gpus: Vec<&String> = gres.iter().filter(|g| g.starts_with("gpu")).collect();
        check(
            "gpus",
            !gpus.is_empty(),
            if gpus.is_empty() {
                format!("no GPU gres in {want} (gres: {})", gres.join(", "))
            } else {
                gpus.iter()
                    .map(|g| g.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        )
    };
    let root = cfg.env.cache_root();
    let cache_ok = match std::fs::create_dir_all(&root) {
        Ok(()) => {
            let probe = root.join(".perf-runner-doctor");
            let ok = std::fs::write(&probe, b"ok").is_ok();
            let _ = std::fs::remove_file(&probe);
            check(
                "cache",
                ok,
                format!(
                    "{}: {} (must be shared with the nodes)",
                    root.display(),
                    if ok { "writable" } else { "not writable" }
                ),
            )
        }
        Err(e) => check("cache", false, format!("{}: {e}", root.display())),
    };
    let usable = checks.first().is_some_and(|c| c.ok) && part_ok && gpu_ok && cache_ok;
    Health { usable, checks }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sinfo_lines_group_by_partition() {
        let p = partitions(
            "test*|up|idle|gpu:h100:2\ntest*|up|mixed|gpu:h100:2\ncpu|down|idle|(null)\n",
        );
        assert_eq!(p.len(), 2);
        assert!(p[0].default && p[0].name == "test" && p[0].states == ["idle", "mixed"]);
        assert_eq!(p[0].gres, ["gpu:h100:2"]);
        assert!(p[1].gres.is_empty() && p[1].avail == "down");
    }

    #[tokio::test]
    async fn a_missing_sinfo_is_unusable() {
        let cfg = SlurmConfig {
            bin_dir: Some("/nonexistent".into()),
            ..SlurmConfig::default()
        };
        let h = health(&cfg).await;
        assert!(!h.usable);
        assert!(!h.checks[0].ok);
    }
}
