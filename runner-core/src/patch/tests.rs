use super::conformance::CASES;
use super::*;

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn want(paths: &[&str]) -> Vec<String> {
    sorted(paths.iter().map(|p| p.to_string()).collect())
}

/// The table every backend's conformance test repeats through its own use of the decision.
#[test]
fn conformance_table() {
    for case in CASES {
        let d = decide(case.patch).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let x = &case.expect;
        let name = case.name;
        assert_eq!(d.strip.level, x.strip, "{name}: strip");
        assert_eq!(sorted(d.paths(Target::Engine)), want(x.engine), "{name}");
        assert_eq!(
            sorted(d.paths(Target::Benchmarks)),
            want(x.benchmarks),
            "{name}"
        );
        assert_eq!(sorted(d.paths(Target::Native)), want(x.native), "{name}");
        assert_eq!(sorted(d.left_out()), want(x.left_out), "{name}");
        assert_eq!(d.needs_compile, !x.native.is_empty(), "{name}");
        let refused = d.check(false).err();
        assert_eq!(refused.as_ref().map(Refusal::failure), x.refused, "{name}");
        // Applied or not, nothing is dropped: every section is in one target's text.
        let all = d.text(&[
            Target::Engine,
            Target::Benchmarks,
            Target::Native,
            Target::Ignored,
        ]);
        for f in &d.files {
            for h in &f.hunks {
                assert!(all.contains(&h.text), "{name}: {}", f.path());
            }
        }
        if x.refused.is_none() {
            assert_eq!(d.text(&[Target::Engine]).is_empty(), x.engine.is_empty());
            assert_eq!(
                d.text(&[Target::Benchmarks]).is_empty(),
                x.benchmarks.is_empty()
            );
        }
    }
}

#[test]
fn a_source_build_takes_native_changes_but_nothing_takes_a_broken_patch() {
    let by_name = |n: &str| CASES.iter().find(|c| c.name == n).unwrap().patch;
    let setup = decide(by_name("setup.py change")).unwrap();
    assert!(setup.check(true).is_ok());
    let e = setup.check(false).unwrap_err();
    assert!(e.to_string().contains("setup.py"), "{e}");
    let binary = decide(by_name("binary hunk")).unwrap();
    let e = binary.check(true).unwrap_err();
    assert_eq!(e.failure(), Failure::PatchFailed);
    assert!(
        e.to_string().contains("vllm/model_executor/table.bin"),
        "{e}"
    );
    let docs = decide(by_name("docs only")).unwrap();
    let e = docs.check(true).unwrap_err().to_string();
    assert!(
        e.contains("nothing a benchmark runs") && e.contains("README.md"),
        "{e}"
    );
    let moved = decide(by_name("rename out of vllm/")).unwrap();
    let e = moved.check(false).unwrap_err().to_string();
    assert!(e.contains("vllm/engine/helper.py → tests/helper.py"), "{e}");
    // Without benchmark scripts, their part is left out, unless nothing else would apply.
    let bench = "--- a/benchmarks/b.py\n+++ b/benchmarks/b.py\n@@ -1 +1 @@\n-a\n+b\n";
    let e = decide(bench).unwrap().without_benchmarks().unwrap_err();
    assert_eq!(e.failure(), Failure::PatchFailed);
    assert!(e.to_string().contains("benchmarks/b.py"), "{e}");
    assert_eq!(
        decide(by_name("vllm/ and benchmarks/"))
            .unwrap()
            .without_benchmarks()
            .unwrap(),
        ["benchmarks/benchmark_latency.py"]
    );
    assert!(setup.without_benchmarks().unwrap().is_empty());
    // A source build gets every applied section, never the left-out ones.
    let both = decide(by_name("vllm/ and benchmarks/")).unwrap();
    let text = both.applied_text();
    assert!(text.contains("benchmark_latency") && text.contains("llm.py"));
    assert!(!text.contains("test_llm"));
}

#[test]
fn hunk_bodies_are_not_headers_and_subsets_keep_their_own_sections() {
    let text = "Subject: prose\n--- a/not/a/header but prose\n\
diff --git a/vllm/x.py b/vllm/x.py\n--- a/vllm/x.py\n+++ b/vllm/x.py\n\
@@ -1,3 +1,3 @@\n a\n--- removed line that looks like a header\n+++ added line that looks like a header\n c\n\
@@ -10 +10,2 @@ def f():\n x\n+y\n\\ No newline at end of file\n\
diff --git a/csrc/attention.cu b/csrc/attention.cu\n--- a/csrc/attention.cu\n+++ b/csrc/attention.cu\n\
@@ -1 +1 @@\n-int a;\n+int b;\n";
    let d = decide(text).unwrap();
    let x = &d.files[0];
    assert_eq!(d.files.len(), 2);
    assert_eq!(x.hunks.len(), 2, "a removed '--- ' line is not a header");
    assert_eq!(x.hunks[1].old_start, 10);
    assert!(x.hunks[1].text.ends_with("\\ No newline at end of file\n"));
    let engine = d.text(&[Target::Engine]);
    assert!(engine.starts_with("diff --git a/vllm/x.py"));
    assert!(!engine.contains("csrc") && !engine.contains("Subject"));
    assert_eq!(d.paths(Target::Native), ["csrc/attention.cu"]);
    assert_eq!(d.file("vllm/x.py").map(|f| f.line), Some(3));
}

#[test]
fn the_strip_level_is_detected_once_from_the_headers() {
    let cases = [
        // git prefixes
        (
            "--- a/x/y.py\n+++ b/x/y.py\n@@ -1 +1 @@\n-a\n+b\n",
            1,
            Evidence::GitPrefixes,
        ),
        // repository paths as written
        (
            "--- vllm/a.py\n+++ vllm/a.py\n@@ -1 +1 @@\n-a\n+b\n",
            0,
            Evidence::RepoPaths,
        ),
        // repository paths under one directory
        (
            "--- src/vllm/a.py\n+++ src/vllm/a.py\n@@ -1 +1 @@\n-a\n+b\n",
            1,
            Evidence::RepoPaths,
        ),
        // two trees
        (
            "--- old/x/a.py\n+++ new/x/a.py\n@@ -1 +1 @@\n-a\n+b\n",
            1,
            Evidence::DifferingRoots,
        ),
        // no directory to strip
        (
            "--- setup.py\n+++ setup.py\n@@ -1 +1 @@\n-a\n+b\n",
            0,
            Evidence::NoDirectory,
        ),
        // a rename line names the path unprefixed
        (
            "diff --git x/vllm/a.py y/vllm/b.py\nsimilarity index 100%\nrename from vllm/a.py\nrename to vllm/b.py\n",
            1,
            Evidence::RenameLines,
        ),
        // nothing to go by
        (
            "--- x/a.py\n+++ x/a.py\n@@ -1 +1 @@\n-a\n+b\n",
            0,
            Evidence::Default,
        ),
    ];
    for (text, level, evidence) in cases {
        let d = decide(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        assert_eq!(
            (d.strip.level, d.strip.evidence),
            (level, evidence),
            "{text:?}"
        );
        assert_eq!(d.strip.arg(), format!("-p{level}"));
        assert!(!d.files.is_empty());
    }
}

#[test]
fn unreadable_patches_are_typed_errors_with_their_line() {
    let mixed = "--- a/vllm/a.py\n+++ b/vllm/a.py\n@@ -1 +1 @@\n-a\n+b\n\
--- vllm/b.py\n+++ vllm/b.py\n@@ -1 +1 @@\n-a\n+b\n";
    match decide(mixed) {
        Err(PatchError::MixedStrip {
            line: 6,
            level: 0,
            first_line: 1,
            first_level: 1,
        }) => {}
        other => panic!("{other:?}"),
    }
    for text in ["", "just prose\n", "@@ -1 +1 @@\n-a\n+b\n"] {
        assert!(
            matches!(decide(text), Err(PatchError::NotADiff)),
            "{text:?}"
        );
    }
    let cases = [
        ("--- a/x\n+++ b/x\n@@ nonsense @@\n", 3),
        // counts promise 3 lines, the file ends after 1
        ("--- a/vllm/x\n+++ b/vllm/x\n@@ -1,3 +1,3 @@\n-a\n", 5),
        // counts promise 2 lines, the next header comes after 1
        (
            "--- a/vllm/x\n+++ b/vllm/x\n@@ -1,2 +1,2 @@\n-a\ndiff --git a/vllm/y b/vllm/y\n",
            5,
        ),
    ];
    for (text, line) in cases {
        match decide(text) {
            Err(e @ PatchError::Malformed { line: l, .. }) => {
                assert_eq!(l, line, "{text:?}: {e}");
                assert_eq!(e.failure(), Failure::PatchFailed);
            }
            other => panic!("{text:?}: {other:?}"),
        }
    }
    // A quoted name that decodes to `..` is refused like a plain one.
    let quoted = "--- \"a/vllm/\\056\\056/\\056\\056/etc/x\"\n+++ \"b/vllm/\\056\\056/\\056\\056/etc/x\"\n@@ -1 +1 @@\n-a\n+b\n";
    match decide(quoted) {
        Err(PatchError::Unsafe(u)) => assert!(u.reason.contains("'..'"), "{u}"),
        other => panic!("{other:?}"),
    }
    let link = "diff --git a/vllm/l b/vllm/l\nnew file mode 120000\n--- /dev/null\n+++ b/vllm/l\n@@ -0,0 +1 @@\n+/etc\n";
    assert!(matches!(decide(link), Err(PatchError::Unsafe(_))));
}

#[test]
fn mode_changes_crlf_and_plain_binaries() {
    let mode = "diff --git a/vllm/run.sh b/vllm/run.sh\nold mode 100644\nnew mode 100755\n";
    let d = decide(mode).unwrap();
    assert_eq!(
        d.files[0].mode,
        Some(("100644".to_string(), "100755".to_string()))
    );
    assert!(d.check(false).is_ok(), "a mode change is a change");

    let crlf = "--- a/vllm/x.py\r\n+++ b/vllm/x.py\r\n@@ -1 +1 @@\r\n-a\r\n+b\r\n";
    let d = decide(crlf).unwrap();
    assert_eq!(d.paths(Target::Engine), ["vllm/x.py"]);
    assert_eq!(d.text(&[Target::Engine]), crlf, "bytes kept as written");

    let plain = "--- vllm/x.py\n+++ vllm/x.py\n@@ -1 +1 @@\n-a\n+b\nBinary files vllm/w.bin and vllm/w.bin differ\n";
    let d = decide(plain).unwrap();
    assert_eq!(d.files.len(), 2);
    assert!(d.files[1].binary && d.files[1].path() == "vllm/w.bin");
    assert_eq!(d.check(false).unwrap_err().failure(), Failure::PatchFailed);

    let empty = "diff --git a/vllm/x.py b/vllm/x.py\n--- a/vllm/x.py\n+++ b/vllm/x.py\n";
    let e = decide(empty).unwrap().check(false).unwrap_err().to_string();
    assert!(e.contains("vllm/x.py changes nothing"), "{e}");
}

#[test]
fn load_checks_the_planned_hash_and_utf8() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.patch");
    std::fs::write(&path, CASES[0].patch).unwrap();
    let spec = |sha: Option<&str>| PatchSpec {
        path: path.display().to_string(),
        sha256: sha.map(str::to_string),
    };
    let d = load(&spec(None)).unwrap();
    assert_eq!(d.sha256.len(), 64);
    assert!(load(&spec(Some(&d.sha256.to_uppercase()))).is_ok());
    let e = load(&spec(Some("00"))).unwrap_err();
    assert_eq!(e.failure(), Failure::BadConfig);
    assert!(e.to_string().contains("changed since planning"), "{e}");
    let e = e.backend_error("x");
    assert_eq!((e.backend, e.kind), ("x", Failure::BadConfig));

    std::fs::write(
        &path,
        b"--- a/vllm/x\n+++ b/vllm/x\n@@ -1 +1 @@\n-caf\xe9\n+x\n",
    )
    .unwrap();
    match load(&spec(None)) {
        Err(PatchError::NotUtf8 { line: 4 }) => {}
        other => panic!("{other:?}"),
    }
    let missing = PatchSpec {
        path: dir.path().join("none").display().to_string(),
        sha256: None,
    };
    assert_eq!(load(&missing).unwrap_err().failure(), Failure::BadConfig);
}

mod never_panics {
    use super::*;
    use proptest::prelude::*;

    const PIECES: [&str; 14] = [
        "diff --git a/vllm/x.py b/vllm/x.py\n",
        "--- a/vllm/x.py\n",
        "+++ b/vllm/x.py\n",
        "--- /dev/null\n",
        "@@ -1,2 +1,2 @@\n",
        "@@ -0,0 +1 @@\n",
        " ctx\n",
        "-old\n",
        "+new\n",
        "\\ No newline at end of file\n",
        "rename from vllm/a.py\n",
        "Binary files a/x and b/x differ\n",
        "\"a/\\303\n",
        "\n",
    ];

    proptest! {
        #[test]
        fn on_any_mix_of_diff_lines(picks in proptest::collection::vec(0usize..PIECES.len(), 0..40)) {
            let text: String = picks.iter().map(|i| PIECES[*i]).collect();
            if let Ok(d) = decide(&text) {
                prop_assert!(!d.files.is_empty());
                let _ = d.check(false);
            }
        }

        #[test]
        fn on_any_text(text in "\\PC{0,400}") {
            let _ = decide(&text);
        }
    }
}
