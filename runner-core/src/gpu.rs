//! GPU requests: `H100:2` means two H100s in one host.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A GPU request: a SKU (kind) and how many of it in one host.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct GpuSpec {
    /// Upper-case SKU name as written, e.g. `H100`, `A100-80GB`.
    pub kind: String,
    /// Number of GPUs, 1 to [`GpuSpec::MAX_COUNT`].
    pub count: u32,
}

/// The accepted form, quoted in every parse error.
pub const GPU_SPEC_FORM: &str =
    "KIND[:COUNT], e.g. 'H100', 'H100:2', 'A100-80GB:4' (COUNT 1-16, KIND letters, digits and '-')";

/// Error for a GPU string that is not `KIND[:COUNT]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid GPU spec '{input}': {why}; expected {GPU_SPEC_FORM}")]
pub struct GpuSpecError {
    /// The string as given.
    pub input: String,
    /// What is wrong with it.
    pub why: String,
}

impl GpuSpec {
    /// The largest count accepted in one host.
    pub const MAX_COUNT: u32 = 16;

    /// A request for `count` GPUs of `kind`.
    pub fn new(kind: impl Into<String>, count: u32) -> Self {
        GpuSpec {
            kind: kind.into().to_ascii_uppercase(),
            count,
        }
    }

    /// Memory per GPU in GiB for known SKUs; `None` for unknown kinds.
    pub fn memory_gib(&self) -> Option<f64> {
        sku_memory_gib(&self.kind)
    }

    /// Whether this is an AMD GPU.
    pub fn is_amd(&self) -> bool {
        self.kind.starts_with("MI")
    }
}

/// Memory per GPU (GiB) of the SKUs perf-runner knows.
pub fn sku_memory_gib(kind: &str) -> Option<f64> {
    let k = kind.to_ascii_uppercase();
    Some(match k.as_str() {
        "H100" | "H100-80GB" | "H100-SXM" | "H100-PCIE" | "H800" => 80.0,
        "H100-NVL" => 94.0,
        "H200" => 141.0,
        "B200" => 180.0,
        "GH200" => 96.0,
        "A100" | "A100-40GB" => 40.0,
        "A100-80GB" => 80.0,
        "A10" | "A10G" | "L4" => 24.0,
        "L40" | "L40S" | "A6000" | "A40" => 48.0,
        "T4" => 16.0,
        "V100" => 16.0,
        "V100-32GB" => 32.0,
        "MI300X" => 192.0,
        "MI325X" => 256.0,
        "MI250" | "MI250X" => 128.0,
        _ => return None,
    })
}

impl FromStr for GpuSpec {
    type Err = GpuSpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |why: &str| GpuSpecError {
            input: s.to_string(),
            why: why.to_string(),
        };
        let t = s.trim();
        if t.is_empty() {
            return Err(err("empty"));
        }
        let (kind, count) = match t.split_once(':') {
            Some((k, c)) => {
                let c = c.trim();
                let n: u32 = c
                    .parse()
                    .map_err(|_| err(&format!("count '{c}' is not a whole number")))?;
                (k.trim(), n)
            }
            None => (t, 1),
        };
        if kind.is_empty() {
            return Err(err("missing GPU kind before ':'"));
        }
        if !kind.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(err(&format!(
                "kind '{kind}' has characters other than letters, digits and '-'"
            )));
        }
        if !kind.chars().next().is_some_and(|c| c.is_ascii_alphabetic()) {
            return Err(err(&format!("kind '{kind}' must start with a letter")));
        }
        let upper = kind.to_ascii_uppercase();
        if let Some((sku, n)) = upper.rsplit_once('X') {
            if sku_memory_gib(sku).is_some() && n.parse::<u32>().is_ok() {
                return Err(err(&format!(
                    "'{kind}' is not a GPU kind; did you mean '{sku}:{n}'?"
                )));
            }
        }
        if count == 0 || count > Self::MAX_COUNT {
            return Err(err(&format!(
                "count {count} is outside 1-{}",
                Self::MAX_COUNT
            )));
        }
        Ok(GpuSpec::new(kind, count))
    }
}

impl fmt::Display for GpuSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.count)
    }
}

impl TryFrom<String> for GpuSpec {
    type Error = GpuSpecError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<GpuSpec> for String {
    fn from(g: GpuSpec) -> String {
        g.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_forms() {
        assert_eq!(
            "H100:2".parse::<GpuSpec>().unwrap(),
            GpuSpec::new("H100", 2)
        );
        assert_eq!("h100".parse::<GpuSpec>().unwrap(), GpuSpec::new("H100", 1));
        let a = "A100-80GB:4".parse::<GpuSpec>().unwrap();
        assert_eq!((a.kind.as_str(), a.count), ("A100-80GB", 4));
        assert_eq!(a.memory_gib(), Some(80.0));
        assert_eq!(
            " H200 : 8 ".parse::<GpuSpec>().unwrap().to_string(),
            "H200:8"
        );
    }

    #[test]
    fn rejected_forms_name_the_accepted_one() {
        for bad in [
            "", ":2", "H100:0", "H100:x", "H100:17", "H 100", "2xH100", "H100:2:3", "8",
        ] {
            let e = bad.parse::<GpuSpec>().unwrap_err().to_string();
            assert!(e.contains("KIND[:COUNT]"), "{bad}: {e}");
        }
    }

    #[test]
    fn serde_uses_the_string_form() {
        let g: GpuSpec = serde_json::from_str("\"H100:2\"").unwrap();
        assert_eq!(serde_json::to_string(&g).unwrap(), "\"H100:2\"");
        assert!(serde_json::from_str::<GpuSpec>("\"H100:0\"").is_err());
    }
}
