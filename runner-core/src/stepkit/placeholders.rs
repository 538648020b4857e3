//! Argv placeholders as a type, their values for one process, and the one [`Values::fill`].
//!
//! A backend says what each placeholder means for a process (a venv's interpreter on this host,
//! `python3` and a mount point inside a container …); the rule of what happens when one has no
//! value is here, once: the error's [`Failure`] code depends only on the placeholder's kind.
//! Filling is a single pass over each token, so a value that itself contains a placeholder's
//! text is never filled again.

use std::path::Path;

use crate::backend::BackendError;
use crate::failure::Failure;
use crate::plan;

/// One placeholder a [`StepPlan`](crate::plan::StepPlan)'s argv may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Placeholder {
    /// `{PYTHON}`: the interpreter of the process's build.
    Python,
    /// `{HOST}`: the address the server listens on, or the one its clients connect to.
    Host,
    /// `{PORT}`: the server's port.
    Port,
    /// `{RESULT_DIR}`: where the client writes its result files.
    ResultDir,
    /// `{VLLM_SOURCE}`: a vLLM source tree at the process's build's commit.
    VllmSource,
    /// `{DATA_DIR}`: where the step's dataset files are.
    DataDir,
    /// `{PERF_RUNNER}`: this program (the native serving client, `bench serve`).
    PerfRunner,
}

impl Placeholder {
    /// Every placeholder.
    pub const ALL: [Placeholder; 7] = [
        Placeholder::Python,
        Placeholder::Host,
        Placeholder::Port,
        Placeholder::ResultDir,
        Placeholder::VllmSource,
        Placeholder::DataDir,
        Placeholder::PerfRunner,
    ];

    /// Its text in an argv token (the constants of [`crate::plan`]).
    pub fn token(self) -> &'static str {
        match self {
            Placeholder::Python => plan::PYTHON,
            Placeholder::Host => plan::HOST,
            Placeholder::Port => plan::PORT,
            Placeholder::ResultDir => plan::RESULT_DIR,
            Placeholder::VllmSource => plan::VLLM_SOURCE,
            Placeholder::DataDir => plan::DATA_DIR,
            Placeholder::PerfRunner => plan::PERF_RUNNER,
        }
    }

    /// The failure of a token that needs this placeholder when it has no value.
    pub fn missing_failure(self) -> Failure {
        match self {
            // The build (or the backend's environment) is not what it should be.
            Placeholder::Python | Placeholder::ResultDir => Failure::EnvironmentBroken,
            // A step that asks for what its mode does not have (a port without a server).
            Placeholder::Host | Placeholder::Port => Failure::BadConfig,
            // Scripts predating `vllm bench` need the build's source tree.
            Placeholder::VllmSource => Failure::VllmVersion,
            Placeholder::DataDir => Failure::DatasetMissing,
            // A plan made for a backend that runs the native client, given to one that cannot.
            Placeholder::PerfRunner => Failure::BadConfig,
        }
    }

    /// Why a value is missing, and what to do, for people.
    fn missing_reason(self) -> &'static str {
        match self {
            Placeholder::Python => "the build's environment has no interpreter",
            Placeholder::Host | Placeholder::Port => "the step has no server, so there is none",
            Placeholder::ResultDir => "the backend gave the process no result directory",
            Placeholder::VllmSource => {
                "it needs a vLLM source tree at the build's commit (benchmark scripts predating \
                 `vllm bench`), and this build has none: configure the backend's vllm_source"
            }
            Placeholder::DataDir => "the backend gave the process no dataset directory",
            Placeholder::PerfRunner => {
                "this backend cannot run perf-runner's native serving client; plan for it (its \
                 capabilities say so) or set [client] kind = \"engine\""
            }
        }
    }

    /// The placeholder whose text starts `s`, if any.
    fn at_start(s: &str) -> Option<Placeholder> {
        Placeholder::ALL
            .into_iter()
            .find(|p| s.starts_with(p.token()))
    }
}

/// How scripts under `{VLLM_SOURCE}` are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptCheck {
    /// The tree is on this host: a `{VLLM_SOURCE}/….py` script must exist, and every path under
    /// it must resolve inside the tree (no link out of it), when the argv is filled.
    OnHost,
    /// The tree is inside the process's image: `.py` scripts are returned in
    /// [`Filled::required`] for the backend to check where the process runs.
    InImage,
}

/// A vLLM source tree for `{VLLM_SOURCE}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceTree {
    /// Its path, as the process sees it.
    pub path: String,
    /// How its scripts are checked.
    pub check: ScriptCheck,
}

/// The values of the placeholders for one process; `None` = it has none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Values {
    /// `{PYTHON}`.
    pub python: Option<String>,
    /// `{HOST}`.
    pub host: Option<String>,
    /// `{PORT}`.
    pub port: Option<u16>,
    /// `{RESULT_DIR}`.
    pub result_dir: Option<String>,
    /// `{VLLM_SOURCE}`.
    pub vllm_source: Option<SourceTree>,
    /// `{DATA_DIR}`.
    pub data_dir: Option<String>,
    /// `{PERF_RUNNER}`: the path of this program, where the backend can run it next to the
    /// server (see [`Capabilities::native_client`](crate::backend::Capabilities)).
    pub perf_runner: Option<String>,
}

/// A filled argv.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filled {
    /// The argv, every placeholder replaced.
    pub argv: Vec<String>,
    /// Scripts under an [`ScriptCheck::InImage`] source tree that must exist where the process
    /// runs.
    pub required: Vec<String>,
}

/// Why an argv could not be filled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FillError {
    /// The argv has no program.
    #[error("an empty argv")]
    EmptyArgv,
    /// A token needs a placeholder that has no value for this process.
    #[error("{token}: no value for {}: {}", .placeholder.token(), .placeholder.missing_reason())]
    Missing {
        /// The placeholder.
        placeholder: Placeholder,
        /// The token as planned.
        token: String,
    },
    /// A `{VLLM_SOURCE}/….py` script the build's tree does not have.
    #[error("{path} does not exist: the build's vLLM source has no such script")]
    NoScript {
        /// The filled path.
        path: String,
    },
    /// A path under `{VLLM_SOURCE}` that leads out of the tree.
    #[error(
        "{path} resolves outside the build's vLLM source tree (a link out of it?); refusing to run it"
    )]
    OutsideSource {
        /// The filled path.
        path: String,
    },
}

impl FillError {
    /// The failure code (one per placeholder kind; a script the build lacks is
    /// `vllm_version`, a path out of the tree `bad_config`).
    pub fn failure(&self) -> Failure {
        match self {
            FillError::EmptyArgv | FillError::OutsideSource { .. } => Failure::BadConfig,
            FillError::Missing { placeholder, .. } => placeholder.missing_failure(),
            FillError::NoScript { .. } => Failure::VllmVersion,
        }
    }

    /// As a backend's error.
    pub fn into_backend(self, backend: &'static str) -> BackendError {
        BackendError::new(backend, self.failure(), self.to_string())
    }
}

impl Values {
    /// The value of `p`, as text.
    fn value(&self, p: Placeholder) -> Option<String> {
        match p {
            Placeholder::Python => self.python.clone(),
            Placeholder::Host => self.host.clone(),
            Placeholder::Port => self.port.map(|p| p.to_string()),
            Placeholder::ResultDir => self.result_dir.clone(),
            Placeholder::VllmSource => self.vllm_source.as_ref().map(|s| s.path.clone()),
            Placeholder::DataDir => self.data_dir.clone(),
            Placeholder::PerfRunner => self.perf_runner.clone(),
        }
    }

    /// Fill every placeholder of `argv` (see the module docs).
    pub fn fill(&self, argv: &[String]) -> Result<Filled, FillError> {
        if argv.is_empty() {
            return Err(FillError::EmptyArgv);
        }
        let mut out = Filled {
            argv: Vec::with_capacity(argv.len()),
            required: Vec::new(),
        };
        for token in argv {
            let filled = self.fill_token(token)?;
            if token.starts_with(plan::VLLM_SOURCE) {
                if let Some(src) = &self.vllm_source {
                    self.check_script(token, &filled, src, &mut out.required)?;
                }
            }
            out.argv.push(filled);
        }
        Ok(out)
    }

    fn fill_token(&self, token: &str) -> Result<String, FillError> {
        let mut out = String::with_capacity(token.len());
        let mut rest = token;
        while let Some(i) = rest.find('{') {
            out.push_str(&rest[..i]);
            rest = &rest[i..];
            match Placeholder::at_start(rest) {
                Some(p) => {
                    let v = self.value(p).ok_or_else(|| FillError::Missing {
                        placeholder: p,
                        token: token.to_string(),
                    })?;
                    out.push_str(&v);
                    rest = &rest[p.token().len()..];
                }
                None => {
                    out.push('{');
                    rest = &rest[1..];
                }
            }
        }
        out.push_str(rest);
        Ok(out)
    }

    fn check_script(
        &self,
        token: &str,
        filled: &str,
        src: &SourceTree,
        required: &mut Vec<String>,
    ) -> Result<(), FillError> {
        let script = token.ends_with(".py");
        match src.check {
            ScriptCheck::InImage => {
                if script {
                    required.push(filled.to_string());
                }
            }
            ScriptCheck::OnHost => {
                let path = Path::new(filled);
                if script && !path.is_file() {
                    return Err(FillError::NoScript {
                        path: filled.to_string(),
                    });
                }
                // Checked at plan time (no '..'); again now that the files exist: a link must
                // not lead out of the source tree.
                if !crate::command::policy::resolves_inside(path, Path::new(&src.path)) {
                    return Err(FillError::OutsideSource {
                        path: filled.to_string(),
                    });
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    fn values(src: Option<SourceTree>) -> Values {
        Values {
            python: Some("/v/bin/python".into()),
            host: Some("127.0.0.1".into()),
            port: Some(8123),
            result_dir: Some("/a/results".into()),
            vllm_source: src,
            data_dir: Some("/d".into()),
            perf_runner: Some("/bin/perf-runner".into()),
        }
    }

    fn in_image(path: &str) -> Option<SourceTree> {
        Some(SourceTree {
            path: path.into(),
            check: ScriptCheck::InImage,
        })
    }

    #[test]
    fn fills_every_placeholder_once() {
        let a = argv(&[
            "{PYTHON}",
            "{VLLM_SOURCE}/benchmarks/b.py",
            "--host",
            "{HOST}",
            "--base-url=http://{HOST}:{PORT}",
            "--result-dir",
            "{RESULT_DIR}",
            "--dataset-path",
            "{DATA_DIR}/sharegpt.json",
            "{not-a-placeholder}",
        ]);
        let f = values(in_image("/vllm-workspace")).fill(&a).unwrap();
        assert_eq!(
            f.argv,
            argv(&[
                "/v/bin/python",
                "/vllm-workspace/benchmarks/b.py",
                "--host",
                "127.0.0.1",
                "--base-url=http://127.0.0.1:8123",
                "--result-dir",
                "/a/results",
                "--dataset-path",
                "/d/sharegpt.json",
                "{not-a-placeholder}",
            ])
        );
        assert_eq!(f.required, ["/vllm-workspace/benchmarks/b.py"]);
        // A value holding a placeholder's text is not filled again.
        let mut v = values(None);
        v.result_dir = Some("/r/{PORT}".into());
        assert_eq!(
            v.fill(&argv(&["{RESULT_DIR}"])).unwrap().argv,
            ["/r/{PORT}"]
        );
    }

    #[test]
    fn a_missing_value_fails_with_its_kind_s_code() {
        for p in Placeholder::ALL {
            let mut v = values(in_image("/s"));
            match p {
                Placeholder::Python => v.python = None,
                Placeholder::Host => v.host = None,
                Placeholder::Port => v.port = None,
                Placeholder::ResultDir => v.result_dir = None,
                Placeholder::VllmSource => v.vllm_source = None,
                Placeholder::DataDir => v.data_dir = None,
                Placeholder::PerfRunner => v.perf_runner = None,
            }
            let token = format!("x{}y", p.token());
            let e = v.fill(&argv(&["prog", &token])).unwrap_err();
            assert_eq!(e.failure(), p.missing_failure(), "{p:?}");
            assert!(e.to_string().contains(&token), "{e}");
            // Tokens without it still fill.
            assert!(v.fill(&argv(&["prog"])).is_ok());
        }
        assert_eq!(
            Placeholder::VllmSource.missing_failure(),
            Failure::VllmVersion
        );
        assert_eq!(Placeholder::Port.missing_failure(), Failure::BadConfig);
        let e = values(None)
            .fill(&argv(&["{VLLM_SOURCE}/benchmarks/x.py"]))
            .unwrap_err();
        assert!(e.to_string().contains("vllm_source"), "{e}");
        assert_eq!(
            values(None).fill(&[]).unwrap_err().failure(),
            Failure::BadConfig
        );
        let be = FillError::EmptyArgv.into_backend("local");
        assert_eq!((be.backend, be.kind), ("local", Failure::BadConfig));
    }

    #[test]
    fn scripts_on_the_host_must_exist_inside_the_tree() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("benchmarks")).unwrap();
        std::fs::write(src.join("benchmarks/ok.py"), "print(1)").unwrap();
        let outside = dir.path().join("evil.py");
        std::fs::write(&outside, "print('evil')").unwrap();
        std::os::unix::fs::symlink(&outside, src.join("benchmarks/linked.py")).unwrap();
        let v = values(Some(SourceTree {
            path: src.display().to_string(),
            check: ScriptCheck::OnHost,
        }));
        let ok = v.fill(&argv(&["{PYTHON}", "{VLLM_SOURCE}/benchmarks/ok.py"]));
        assert!(ok.unwrap().required.is_empty());
        let e = v
            .fill(&argv(&["{PYTHON}", "{VLLM_SOURCE}/benchmarks/missing.py"]))
            .unwrap_err();
        assert_eq!(e.failure(), Failure::VllmVersion);
        assert!(e.to_string().contains("missing.py"), "{e}");
        let e = v
            .fill(&argv(&["{PYTHON}", "{VLLM_SOURCE}/benchmarks/linked.py"]))
            .unwrap_err();
        assert_eq!(e.failure(), Failure::BadConfig);
        assert!(
            e.to_string().contains("outside the build's vLLM source"),
            "{e}"
        );
    }
}
