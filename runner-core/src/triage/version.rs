//! vLLM versions, the release timeline and first-supported tables (embedded `vllm.toml`), and
//! version ranges: what a parent commit's engine is known to contain.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::LazyLock;

use serde::Deserialize;

/// The embedded facts about vLLM releases (see the file's comments for the semantics).
pub const VLLM_FACTS_TOML: &str = include_str!("vllm.toml");

/// A release number `major.minor.patch`; suffixes (`.dev12+g…`, `.post1`, `rc1`) are not part
/// of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Version(pub u32, pub u32, pub u32);

impl Version {
    /// Parse the leading `X.Y[.Z]` of a version string (`v0.6.4.dev12+gabc` → 0.6.4).
    pub fn parse(s: &str) -> Option<Version> {
        let s = s.trim().trim_start_matches('v');
        let mut nums = [0u32; 3];
        let mut count = 0;
        for part in s.split('.').take(3) {
            let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
            if digits.is_empty() {
                break;
            }
            nums[count] = digits.parse().ok()?;
            count += 1;
            if digits.len() != part.len() {
                break;
            }
        }
        (count >= 2).then_some(Version(nums[0], nums[1], nums[2]))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// Whether a feature first released in some version is in an engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// Certainly there (released at or before the range's lower end).
    Present,
    /// Certainly not there (first released after the range's upper end).
    Absent,
    /// Cannot tell from the range.
    Unknown,
}

/// What is known of an engine's version: it contains every release up to `lo` and none after
/// `hi`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRange {
    /// The newest release it certainly contains (`None`: older than every known release).
    pub lo: Option<Version>,
    /// The newest release it may contain (`None`: unbounded).
    pub hi: Option<Version>,
    /// Where the range comes from, for the evidence (`estimate from commit date 2024-05-01 …`).
    pub basis: String,
    /// Whether it is an estimate (from the date) rather than a stated version.
    pub estimate: bool,
}

impl VersionRange {
    /// Whether a feature first released in `since` is in the engine.
    pub fn presence(&self, since: Version) -> Presence {
        if self.lo.is_some_and(|lo| lo >= since) {
            Presence::Present
        } else if self.hi.is_some_and(|hi| since > hi) {
            Presence::Absent
        } else {
            Presence::Unknown
        }
    }

    /// A short human form: `0.6.3`, `between 0.6.3 and 0.6.4`, `after 0.11.0`.
    pub fn describe(&self) -> String {
        match (self.lo, self.hi) {
            (Some(lo), Some(hi)) if lo == hi => lo.to_string(),
            (Some(lo), Some(hi)) => format!("between {lo} and {hi}"),
            (Some(lo), None) => format!("after {lo}"),
            (None, Some(hi)) => format!("before {hi}"),
            (None, None) => "unknown".into(),
        }
    }
}

#[derive(Deserialize)]
struct FactsFile {
    releases: Vec<(String, String)>,
    first_wheel: String,
    bench_cli_since: String,
    arch_since: BTreeMap<String, String>,
    flag_since: BTreeMap<String, String>,
    env_since: BTreeMap<String, String>,
    arch_modules: BTreeMap<String, Vec<String>>,
}

/// Parsed `vllm.toml`.
#[derive(Debug, Clone)]
pub struct VllmFacts {
    /// Releases in date order: version and `YYYY-MM-DD`.
    pub releases: Vec<(Version, String)>,
    /// First release with per-commit wheels.
    pub first_wheel: Version,
    /// First release with `vllm bench`.
    pub bench_cli_since: Version,
    /// Architecture → first release.
    pub arch_since: BTreeMap<String, Version>,
    /// Flag → first release.
    pub flag_since: BTreeMap<String, Version>,
    /// Env var → first release.
    pub env_since: BTreeMap<String, Version>,
    /// Architecture → model file stems implementing it.
    pub arch_modules: BTreeMap<String, Vec<String>>,
}

static BUILTIN: LazyLock<VllmFacts> = LazyLock::new(|| {
    // Covered by a unit test: the embedded file always parses.
    VllmFacts::from_toml(VLLM_FACTS_TOML).unwrap_or_else(|e| panic!("embedded vllm.toml: {e}"))
});

fn versions(m: BTreeMap<String, String>) -> Result<BTreeMap<String, Version>, String> {
    m.into_iter()
        .map(|(k, v)| {
            Version::parse(&v)
                .map(|v| (k.clone(), v))
                .ok_or_else(|| format!("'{k}': bad version '{v}'"))
        })
        .collect()
}

impl VllmFacts {
    /// The embedded facts, parsed once.
    pub fn builtin() -> &'static VllmFacts {
        &BUILTIN
    }

    /// Parse facts in the `vllm.toml` format.
    pub fn from_toml(text: &str) -> Result<VllmFacts, String> {
        let file: FactsFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut releases = Vec::new();
        for (v, d) in file.releases {
            let ver = Version::parse(&v).ok_or_else(|| format!("bad release '{v}'"))?;
            let date = iso_date(&d).ok_or_else(|| format!("bad date '{d}' of {v}"))?;
            releases.push((ver, date.to_string()));
        }
        releases.sort();
        let bad = |s: &str| format!("bad version '{s}'");
        Ok(VllmFacts {
            releases,
            first_wheel: Version::parse(&file.first_wheel).ok_or_else(|| bad(&file.first_wheel))?,
            bench_cli_since: Version::parse(&file.bench_cli_since)
                .ok_or_else(|| bad(&file.bench_cli_since))?,
            arch_since: versions(file.arch_since)?,
            flag_since: versions(file.flag_since)?,
            env_since: versions(file.env_since)?,
            arch_modules: file.arch_modules,
        })
    }

    /// The release date of a version, if it is in the timeline.
    pub fn release_date(&self, v: Version) -> Option<&str> {
        self.releases
            .iter()
            .find(|(r, _)| *r == v)
            .map(|(_, d)| d.as_str())
    }

    /// The range of a main-branch commit dated `date` (ISO 8601; only the day counts).
    pub fn range_for_date(&self, date: &str) -> Option<VersionRange> {
        let day = iso_date(date)?;
        let before = self.releases.iter().rposition(|(_, d)| d.as_str() <= day);
        let lo = before.map(|i| self.releases[i].0);
        let next = before.map_or(0, |i| i + 1);
        let hi = self.releases.get(next).map(|(v, _)| *v);
        let last = self.releases.last().map(|(v, d)| format!("{v} ({d})"));
        let basis = match (lo, hi) {
            (Some(lo), Some(hi)) => format!(
                "estimate from the commit date {day}: after v{lo} ({}), before v{hi} ({})",
                self.release_date(lo).unwrap_or("?"),
                self.release_date(hi).unwrap_or("?")
            ),
            _ => format!(
                "estimate from the commit date {day}; the release timeline ends at {}",
                last.unwrap_or_default()
            ),
        };
        Some(VersionRange {
            lo,
            hi,
            basis,
            estimate: true,
        })
    }

    /// The range of an engine whose version string is `s` (`0.6.4.dev12+g…` lies between 0.6.3
    /// and 0.6.4; `0.6.3.post1` is 0.6.3).
    pub fn range_for_version(&self, s: &str, basis: String) -> Option<VersionRange> {
        let v = Version::parse(s)?;
        let lower = s.to_ascii_lowercase();
        let public = lower.split('+').next().unwrap_or_default();
        let pre = public.contains("dev") || public.contains("rc");
        let (lo, hi) = if pre {
            let prev = self.releases.iter().rev().map(|(r, _)| *r).find(|r| *r < v);
            (prev, Some(v))
        } else {
            (Some(v), Some(v))
        };
        Some(VersionRange {
            lo,
            hi,
            basis,
            estimate: false,
        })
    }

    /// The release date of the first version with per-commit wheels.
    pub fn first_wheel_date(&self) -> Option<&str> {
        self.release_date(self.first_wheel)
    }
}

/// The `YYYY-MM-DD` prefix of an ISO 8601 date, if it has one.
pub fn iso_date(s: &str) -> Option<&str> {
    let s = s.trim();
    let day = s.get(..10)?;
    let b = day.as_bytes();
    let ok = b.iter().enumerate().all(|(i, c)| match i {
        4 | 7 => *c == b'-',
        _ => c.is_ascii_digit(),
    });
    (ok && (s.len() == 10 || !s.as_bytes()[10].is_ascii_digit())).then_some(day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_facts_parse_and_are_ordered() {
        let f = VllmFacts::builtin();
        assert!(f.releases.windows(2).all(|w| w[0].1 <= w[1].1));
        assert_eq!(f.first_wheel_date(), Some("2024-07-23"));
        assert_eq!(f.arch_since["Qwen3MoeForCausalLM"], Version(0, 8, 5));
    }

    #[test]
    fn versions_and_ranges() {
        assert_eq!(Version::parse("v0.6.4.dev12+gabc"), Some(Version(0, 6, 4)));
        assert_eq!(Version::parse("0.10"), Some(Version(0, 10, 0)));
        assert_eq!(Version::parse("1.0.0rc1"), Some(Version(1, 0, 0)));
        assert_eq!(Version::parse("x"), None);
        let f = VllmFacts::builtin();
        let r = f.range_for_date("2025-04-10T10:00:00Z").unwrap();
        assert_eq!(
            (r.lo, r.hi),
            (Some(Version(0, 8, 3)), Some(Version(0, 8, 4)))
        );
        assert_eq!(r.presence(Version(0, 8, 5)), Presence::Absent);
        assert_eq!(r.presence(Version(0, 8, 4)), Presence::Unknown);
        assert_eq!(r.presence(Version(0, 8, 3)), Presence::Present);
        let d = f.range_for_version("0.6.4.dev12", "w".into()).unwrap();
        assert_eq!(d.describe(), "between 0.6.3 and 0.6.4");
        assert!(f.range_for_date("2023").is_none());
        assert!(f.range_for_date("2030-01-01").unwrap().hi.is_none());
    }
}
