//! The Docker primitive of the agent patch: a step of the agent image's build that applies the
//! parts the [`Decision`] (`runner_core::patch`) sends to the installed `vllm` package and to
//! the image's benchmark scripts, with the decision's `-p` level.
//!
//! An image holds vLLM as an installed package (`…/site-packages/vllm`), not a checkout, so a
//! patch that needs a source build is refused before any build; each part must apply
//! completely or the build fails with `patch_failed`. Images without benchmark scripts at
//! `vllm_source` leave the `benchmarks/` part out and say so in the build log.

use runner_core::BackendError;
use runner_core::build::PatchSpec;
use runner_core::patch::{self, Decision, Target};

use crate::NAME;
use crate::config::DockerConfig;

/// Where the patch parts are copied in the agent image's build.
pub(crate) const PATCH_DIR: &str = "/tmp/perf-runner";
/// The build-context name of the part applied to the installed package.
const ENGINE_PART: &str = "engine.patch";
/// The build-context name of the part applied to the benchmark scripts.
const BENCHMARKS_PART: &str = "benchmarks.patch";

/// The patch step of an agent image: build-context files and the script that applies them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PatchLayer {
    /// Build-context files (name, text), copied to [`PATCH_DIR`].
    pub files: Vec<(&'static str, String)>,
    /// The shell script of the `RUN` step.
    pub script: String,
}

impl PatchLayer {
    /// The layer of `decision` (which must have passed [`Decision::check`]): its `vllm/` part
    /// for the installed package found with `python`, its `benchmarks/` part for the scripts
    /// at `vllm_source`; the files are looked for in `dir`.
    pub(crate) fn new(decision: &Decision, python: &str, vllm_source: &str, dir: &str) -> Self {
        let mut files = Vec::new();
        let mut script = format!("set -e\n{}", apply_fn(&decision.strip.arg()));
        let engine = decision.text(&[Target::Engine]);
        if !engine.is_empty() {
            files.push((ENGINE_PART, engine));
            script.push_str(&engine_step(python, &format!("{dir}/{ENGINE_PART}")));
        }
        let benchmarks = decision.text(&[Target::Benchmarks]);
        if !benchmarks.is_empty() {
            files.push((BENCHMARKS_PART, benchmarks));
            script.push_str(&benchmarks_step(
                vllm_source,
                &format!("{dir}/{BENCHMARKS_PART}"),
                files.len() == 1,
            ));
        }
        PatchLayer { files, script }
    }
}

/// The patch of `spec`, read and decided (`runner_core::patch::load`), refused as the decision
/// says for a backend without source builds, and its layer.
pub(crate) fn agent_layer(
    spec: &PatchSpec,
    config: &DockerConfig,
) -> Result<(Decision, PatchLayer), BackendError> {
    let decision = patch::load(spec).map_err(|e| e.backend_error(NAME))?;
    decision.check(false).map_err(|e| e.backend_error(NAME))?;
    let layer = PatchLayer::new(&decision, &config.python, &config.vllm_source, PATCH_DIR);
    Ok((decision, layer))
}

/// Single-quoted for `sh`.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// `apply DIR FILE`: check that every hunk applies, then apply (GNU patch, else git).
fn apply_fn(strip: &str) -> String {
    format!(
        r#"apply() {{
  cd "$1"
  if command -v patch >/dev/null 2>&1; then
    patch {strip} --batch --forward --no-backup-if-mismatch --dry-run -i "$2"
    patch {strip} --batch --forward --no-backup-if-mismatch -i "$2"
  elif command -v git >/dev/null 2>&1; then
    git apply --check {strip} "$2"
    git apply {strip} "$2"
  else
    echo "perf-runner: the image has neither patch nor git to apply the agent patch" >&2
    exit 3
  fi
  rm -f "$2"
}}
"#
    )
}

/// Where images usually install Python packages; searched when Python cannot say.
const SITE_DIRS: &str = "/usr/local/lib/python3*/dist-packages /usr/local/lib/python3*/site-packages \
/usr/lib/python3/dist-packages /usr/lib/python3*/site-packages /opt/*/lib/python3*/site-packages \
/root/.local/lib/python3*/site-packages";

/// Find the directory holding the installed `vllm` package (asking Python, else looking in
/// the usual site-packages folders) and apply `file` there.
fn engine_step(python: &str, file: &str) -> String {
    format!(
        r#"site=$({python} -c 'import importlib.util, os; s = importlib.util.find_spec("vllm"); print(os.path.dirname(os.path.dirname(s.origin)))' 2>/dev/null) || site=""
if [ -z "$site" ] || [ ! -d "$site/vllm" ]; then
  site=""
  for d in {SITE_DIRS}; do
    if [ -d "$d/vllm" ]; then site="$d"; break; fi
  done
fi
if [ -z "$site" ]; then
  echo "perf-runner: cannot find the installed vllm package" >&2
  exit 4
fi
echo "perf-runner: applying the agent patch's vllm/ files in $site"
apply "$site" {file}
"#,
        file = sh_quote(file),
    )
}

/// Apply `file` to the benchmark scripts at `src`; without them the part is left out, or,
/// when it is the whole patch (`alone`), the step fails.
fn benchmarks_step(src: &str, file: &str, alone: bool) -> String {
    let (src, file) = (sh_quote(src), sh_quote(file));
    let missing = if alone {
        "it changes nothing else; the patch cannot be applied\" >&2\n  exit 5".to_string()
    } else {
        format!("the agent patch's benchmarks/ files are not applied\" >&2\n  rm -f {file}")
    };
    format!(
        r#"if [ -d {src}/benchmarks ]; then
  echo "perf-runner: applying the agent patch's benchmarks/ files in "{src}
  apply {src} {file}
else
  echo "perf-runner: no benchmark scripts at "{src}"/benchmarks: {missing}
fi
"#
    )
}

#[cfg(test)]
#[path = "patch_tests.rs"]
mod tests;
