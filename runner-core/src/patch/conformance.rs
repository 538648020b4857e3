//! The patches every backend's conformance test feeds through its own use of the
//! [`Decision`](super::Decision), with the decision they must all reach and, for those that
//! apply, the files before and after — so a backend shows it applies what the decision says,
//! where it says, with the `-p` level it says.

use std::path::Path;

use crate::backend::BackendError;
use crate::build::PatchSpec;
use crate::failure::Failure;

/// What every backend must decide for a [`Case`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expect {
    /// The `-p` level.
    pub strip: u8,
    /// Files applied to the installed package.
    pub engine: &'static [&'static str],
    /// Files applied to the benchmark scripts.
    pub benchmarks: &'static [&'static str],
    /// Native files (`needs_compile` when not empty).
    pub native: &'static [&'static str],
    /// Files left out.
    pub left_out: &'static [&'static str],
    /// How a backend without a source build refuses it (`None`: it applies).
    pub refused: Option<Failure>,
}

/// One conformance patch.
#[derive(Debug, Clone, Copy)]
pub struct Case {
    /// Short name, for messages.
    pub name: &'static str,
    /// The patch's text.
    pub patch: &'static str,
    /// Files (repository paths) and their content before the patch.
    pub before: &'static [(&'static str, &'static str)],
    /// Files and their content after a backend applied it (`None`: the file is gone); only
    /// for cases that apply.
    pub after: &'static [(&'static str, Option<&'static str>)],
    /// The decision.
    pub expect: Expect,
}

impl Case {
    /// Write the patch to `dir/agent.patch`; its spec (no planned hash).
    pub fn write_patch(&self, dir: &Path) -> std::io::Result<PatchSpec> {
        let path = dir.join("agent.patch");
        std::fs::write(&path, self.patch)?;
        Ok(PatchSpec {
            path: path.display().to_string(),
            sha256: None,
        })
    }

    /// Lay out the files before the patch: `vllm/…` (and an empty `vllm/__init__.py`, so
    /// Python finds the package) under `site`, `benchmarks/…` under `scripts`.
    pub fn lay_out(&self, site: &Path, scripts: &Path) -> std::io::Result<()> {
        let init = [("vllm/__init__.py", "")];
        for (path, text) in self.before.iter().chain(&init) {
            let file = tree(path, site, scripts).join(path);
            if let Some(parent) = file.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(file, text)?;
        }
        std::fs::create_dir_all(scripts.join("benchmarks"))
    }

    /// The files after a backend applied the patch, against [`Case::after`]: what differs.
    pub fn check_after(&self, site: &Path, scripts: &Path) -> Result<(), String> {
        let mut wrong = Vec::new();
        for (path, want) in self.after {
            let got = std::fs::read_to_string(tree(path, site, scripts).join(path)).ok();
            if got.as_deref() != *want {
                wrong.push(format!("{path}: {got:?}, want {want:?}"));
            }
        }
        if wrong.is_empty() {
            Ok(())
        } else {
            Err(format!("{}: {}", self.name, wrong.join("; ")))
        }
    }

    /// A backend's answer against the expected refusal: `Ok(Some(v))` when it applies as it
    /// should, `Ok(None)` when it refused as it should, else what went wrong.
    pub fn outcome<T>(&self, got: Result<T, BackendError>) -> Result<Option<T>, String> {
        match (got, self.expect.refused) {
            (Ok(v), None) => Ok(Some(v)),
            (Err(e), Some(kind)) if e.kind == kind => Ok(None),
            (Err(e), want) => Err(format!("{}: refused ({e}), want {want:?}", self.name)),
            (Ok(_), Some(kind)) => Err(format!("{}: accepted, want {kind:?}", self.name)),
        }
    }
}

/// The folder a repository path lies in: the installed package or the scripts.
fn tree<'a>(path: &str, site: &'a Path, scripts: &'a Path) -> &'a Path {
    if path.starts_with("vllm/") {
        site
    } else {
        scripts
    }
}

const LLM: &str = "def step():\n    return 1\n# end\n";
const LLM_AFTER: &str = "def step():\n    return 2\n# end\n";

const NONE: &[&str] = &[];

/// A `-p1` patch that changes nothing anywhere: the cases say what differs.
const P1: Expect = Expect {
    strip: 1,
    engine: NONE,
    benchmarks: NONE,
    native: NONE,
    left_out: NONE,
    refused: None,
};

/// The cases: `-p1` git diff, `-p0` plain diff, rename, binary hunk, `setup.py`, a `.hip`
/// file, a `cmake/` file, docs only, `vllm/` with `benchmarks/`, and a few more.
pub const CASES: &[Case] = &[
    Case {
        name: "p1 git diff",
        patch: concat!(
            "From 0123abcd Mon Sep 17 00:00:00 2001\nSubject: [PATCH] faster step\n\n---\n",
            "diff --git a/vllm/engine/llm.py b/vllm/engine/llm.py\n",
            "index 1111111..2222222 100644\n",
            "--- a/vllm/engine/llm.py\n+++ b/vllm/engine/llm.py\n",
            "@@ -1,3 +1,3 @@\n def step():\n-    return 1\n+    return 2\n # end\n",
            "-- \n2.43.0\n",
        ),
        before: &[("vllm/engine/llm.py", LLM)],
        after: &[("vllm/engine/llm.py", Some(LLM_AFTER))],
        expect: Expect {
            engine: &["vllm/engine/llm.py"],
            ..P1
        },
    },
    Case {
        name: "p0 plain diff",
        patch: concat!(
            "--- vllm/worker/worker.py\t2024-05-01 10:00:00.000000000 +0000\n",
            "+++ vllm/worker/worker.py\t2024-05-01 10:05:00.000000000 +0000\n",
            "@@ -1,2 +1,2 @@\n-BATCH = 8\n+BATCH = 16\n DONE = True\n",
        ),
        before: &[("vllm/worker/worker.py", "BATCH = 8\nDONE = True\n")],
        after: &[("vllm/worker/worker.py", Some("BATCH = 16\nDONE = True\n"))],
        expect: Expect {
            strip: 0,
            engine: &["vllm/worker/worker.py"],
            ..P1
        },
    },
    Case {
        name: "rename",
        patch: concat!(
            "diff --git a/vllm/old_name.py b/vllm/new_name.py\n",
            "similarity index 67%\n",
            "rename from vllm/old_name.py\nrename to vllm/new_name.py\n",
            "index 1111111..2222222 100644\n",
            "--- a/vllm/old_name.py\n+++ b/vllm/new_name.py\n",
            "@@ -1,3 +1,3 @@\n A = 1\n-B = 2\n+B = 3\n C = 4\n",
        ),
        before: &[("vllm/old_name.py", "A = 1\nB = 2\nC = 4\n")],
        after: &[
            ("vllm/old_name.py", None),
            ("vllm/new_name.py", Some("A = 1\nB = 3\nC = 4\n")),
        ],
        expect: Expect {
            engine: &["vllm/new_name.py"],
            ..P1
        },
    },
    Case {
        name: "binary hunk",
        patch: concat!(
            "diff --git a/vllm/engine/llm.py b/vllm/engine/llm.py\n",
            "--- a/vllm/engine/llm.py\n+++ b/vllm/engine/llm.py\n",
            "@@ -1,3 +1,3 @@\n def step():\n-    return 1\n+    return 2\n # end\n",
            "diff --git a/vllm/model_executor/table.bin b/vllm/model_executor/table.bin\n",
            "index 1111111..2222222 100644\n",
            "GIT binary patch\nliteral 4\nLcmZQzU|;|M00aO5\n\nliteral 4\nLcmZQzU|;|M00aO5\n\n",
        ),
        before: &[("vllm/engine/llm.py", LLM)],
        after: &[],
        expect: Expect {
            engine: &["vllm/engine/llm.py", "vllm/model_executor/table.bin"],
            refused: Some(Failure::PatchFailed),
            ..P1
        },
    },
    Case {
        name: "setup.py change",
        patch: concat!(
            "diff --git a/setup.py b/setup.py\n--- a/setup.py\n+++ b/setup.py\n",
            "@@ -1,2 +1,2 @@\n-VERSION = \"0.1\"\n+VERSION = \"0.2\"\n setup()\n",
            "diff --git a/vllm/engine/llm.py b/vllm/engine/llm.py\n",
            "--- a/vllm/engine/llm.py\n+++ b/vllm/engine/llm.py\n",
            "@@ -1,3 +1,3 @@\n def step():\n-    return 1\n+    return 2\n # end\n",
        ),
        before: &[("vllm/engine/llm.py", LLM)],
        after: &[],
        expect: Expect {
            engine: &["vllm/engine/llm.py"],
            native: &["setup.py"],
            refused: Some(Failure::NeedsCompile),
            ..P1
        },
    },
    Case {
        name: ".hip file (diff -u of two trees)",
        patch: concat!(
            "--- vllm-orig/vllm/attention/ops/paged.hip\t2024-05-01 10:00:00 +0000\n",
            "+++ vllm/vllm/attention/ops/paged.hip\t2024-05-01 10:05:00 +0000\n",
            "@@ -1 +1 @@\n-#define BLOCK 128\n+#define BLOCK 256\n",
        ),
        before: &[],
        after: &[],
        expect: Expect {
            native: &["vllm/attention/ops/paged.hip"],
            refused: Some(Failure::NeedsCompile),
            ..P1
        },
    },
    Case {
        name: "cmake/ file",
        patch: concat!(
            "diff --git a/cmake/hipify.py b/cmake/hipify.py\n",
            "--- a/cmake/hipify.py\n+++ b/cmake/hipify.py\n",
            "@@ -1 +1 @@\n-ARCH = 'gfx90a'\n+ARCH = 'gfx942'\n",
        ),
        before: &[],
        after: &[],
        expect: Expect {
            native: &["cmake/hipify.py"],
            refused: Some(Failure::NeedsCompile),
            ..P1
        },
    },
    Case {
        name: "docs only",
        patch: concat!(
            "diff --git a/docs/source/perf.md b/docs/source/perf.md\n",
            "--- a/docs/source/perf.md\n+++ b/docs/source/perf.md\n",
            "@@ -1 +1 @@\n-slow\n+fast\n",
            "diff --git a/README.md b/README.md\nnew file mode 100644\nindex 0000000..1111111\n",
            "--- /dev/null\n+++ b/README.md\n@@ -0,0 +1 @@\n+# vLLM\n",
        ),
        before: &[],
        after: &[],
        expect: Expect {
            left_out: &["docs/source/perf.md", "README.md"],
            refused: Some(Failure::PatchFailed),
            ..P1
        },
    },
    Case {
        name: "vllm/ and benchmarks/",
        patch: concat!(
            "diff --git a/vllm/engine/llm.py b/vllm/engine/llm.py\n",
            "--- a/vllm/engine/llm.py\n+++ b/vllm/engine/llm.py\n",
            "@@ -1,3 +1,3 @@\n def step():\n-    return 1\n+    return 2\n # end\n",
            "diff --git a/tests/test_llm.py b/tests/test_llm.py\n",
            "--- a/tests/test_llm.py\n+++ b/tests/test_llm.py\n",
            "@@ -1 +1 @@\n-assert step() == 1\n+assert step() == 2\n",
            "diff --git a/benchmarks/benchmark_latency.py b/benchmarks/benchmark_latency.py\n",
            "--- a/benchmarks/benchmark_latency.py\n+++ b/benchmarks/benchmark_latency.py\n",
            "@@ -1,2 +1,2 @@\n ITERS = 3\n-WARMUP = 1\n+WARMUP = 2\n",
        ),
        before: &[
            ("vllm/engine/llm.py", LLM),
            ("benchmarks/benchmark_latency.py", "ITERS = 3\nWARMUP = 1\n"),
        ],
        after: &[
            ("vllm/engine/llm.py", Some(LLM_AFTER)),
            (
                "benchmarks/benchmark_latency.py",
                Some("ITERS = 3\nWARMUP = 2\n"),
            ),
        ],
        expect: Expect {
            engine: &["vllm/engine/llm.py"],
            benchmarks: &["benchmarks/benchmark_latency.py"],
            left_out: &["tests/test_llm.py"],
            ..P1
        },
    },
    Case {
        name: "git diff --no-prefix",
        patch: concat!(
            "diff --git vllm/engine/llm.py vllm/engine/llm.py\n",
            "index 1111111..2222222 100644\n",
            "--- vllm/engine/llm.py\n+++ vllm/engine/llm.py\n",
            "@@ -1,3 +1,3 @@\n def step():\n-    return 1\n+    return 2\n # end\n",
        ),
        before: &[("vllm/engine/llm.py", LLM)],
        after: &[("vllm/engine/llm.py", Some(LLM_AFTER))],
        expect: Expect {
            strip: 0,
            engine: &["vllm/engine/llm.py"],
            ..P1
        },
    },
    Case {
        name: "new and deleted files",
        patch: concat!(
            "diff --git a/vllm/engine/fast.py b/vllm/engine/fast.py\nnew file mode 100644\n",
            "index 0000000..1111111\n--- /dev/null\n+++ b/vllm/engine/fast.py\n",
            "@@ -0,0 +1 @@\n+FAST = True\n",
            "diff --git a/vllm/engine/slow.py b/vllm/engine/slow.py\ndeleted file mode 100644\n",
            "index 1111111..0000000\n--- a/vllm/engine/slow.py\n+++ /dev/null\n",
            "@@ -1 +0,0 @@\n-SLOW = True\n",
        ),
        before: &[("vllm/engine/slow.py", "SLOW = True\n")],
        after: &[
            ("vllm/engine/fast.py", Some("FAST = True\n")),
            ("vllm/engine/slow.py", None),
        ],
        expect: Expect {
            engine: &["vllm/engine/fast.py", "vllm/engine/slow.py"],
            ..P1
        },
    },
    Case {
        name: "rename out of vllm/",
        patch: concat!(
            "diff --git a/vllm/engine/helper.py b/tests/helper.py\n",
            "similarity index 100%\nrename from vllm/engine/helper.py\nrename to tests/helper.py\n",
        ),
        before: &[],
        after: &[],
        expect: Expect {
            left_out: &["tests/helper.py"],
            refused: Some(Failure::PatchFailed),
            ..P1
        },
    },
];
