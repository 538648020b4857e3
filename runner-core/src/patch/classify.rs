//! Where a repository path belongs: the one rule every backend uses.

/// Where a patched file belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    /// Python package code and data under `vllm/`: applied to the installed package.
    Engine,
    /// `benchmarks/`: applied to the build's benchmark scripts.
    Benchmarks,
    /// C++/CUDA/HIP/assembly sources and headers, CMake, `setup.py`: only a source build
    /// takes them (`needs_compile`).
    Native,
    /// Tests, docs, CI, examples …: nothing a benchmark runs; left out.
    Ignored,
}

impl Target {
    /// Lower-case name, for messages and records.
    pub fn as_str(self) -> &'static str {
        match self {
            Target::Engine => "engine",
            Target::Benchmarks => "benchmarks",
            Target::Native => "native",
            Target::Ignored => "ignored",
        }
    }
}

/// Extensions of native sources and headers (compared without case: `.S` is assembly too).
pub const NATIVE_EXTENSIONS: [&str; 11] = [
    "cu", "cuh", "cpp", "cc", "cxx", "c", "h", "hpp", "hip", "s", "cmake",
];

/// Directories of native code and build files (compared without case).
pub const NATIVE_DIRS: [&str; 2] = ["csrc/", "cmake/"];

/// Where a repository path (prefix already stripped) belongs.
pub fn classify(path: &str) -> Target {
    let lower = path.to_ascii_lowercase();
    let file = lower.rsplit('/').next().unwrap_or(&lower);
    let ext = file.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    let native = NATIVE_DIRS.iter().any(|d| lower.starts_with(d))
        || NATIVE_EXTENSIONS.contains(&ext)
        || file == "cmakelists.txt"
        || lower == "setup.py";
    if native {
        Target::Native
    } else if path.starts_with("vllm/") {
        Target::Engine
    } else if path.starts_with("benchmarks/") {
        Target::Benchmarks
    } else {
        Target::Ignored
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The union of the rules the three backends had: local's `setup.py`, Docker's `.hip`,
    /// `.s` and `cmake/` and case-blindness, everyone's `csrc/` and C/C++/CUDA files.
    #[test]
    fn one_rule_for_every_backend() {
        let cases = [
            ("csrc/ops.h", Target::Native),
            ("csrc/attention/attention.py", Target::Native),
            ("CSRC/x.txt", Target::Native),
            ("cmake/hipify.py", Target::Native),
            ("cmake/utils.cmake", Target::Native),
            ("CMakeLists.txt", Target::Native),
            ("vllm/third_party/CMakeLists.txt", Target::Native),
            ("setup.py", Target::Native),
            ("vllm/attention/kernel.cuh", Target::Native),
            ("vllm/kernels/paged.hip", Target::Native),
            ("vllm/kernels/gemm.S", Target::Native),
            ("vllm/kernels/gemm.s", Target::Native),
            ("benchmarks/kernels/k.CU", Target::Native),
            ("vllm/_custom_ops.py", Target::Engine),
            (
                "vllm/model_executor/layers/fused_moe/configs/E=8.json",
                Target::Engine,
            ),
            ("vllm/setup.py", Target::Engine),
            ("benchmarks/kernels/bench.py", Target::Benchmarks),
            ("docs/source/index.md", Target::Ignored),
            ("tests/test_x.py", Target::Ignored),
            ("Vllm/x.py", Target::Ignored),
            ("requirements/cuda.txt", Target::Ignored),
        ];
        for (path, want) in cases {
            assert_eq!(classify(path), want, "{path}");
        }
    }
}
