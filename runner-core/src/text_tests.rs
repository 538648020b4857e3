use std::borrow::Cow;

use proptest::prelude::*;

use super::*;

/// Whether `s` still has a character a terminal would act on or hide.
fn has_raw(s: &str) -> bool {
    s.chars().any(needs_escape)
}

/// The pipes a GitHub-flavoured table row splitter would see: it takes `\X` as a pair.
fn bare_pipes(s: &str) -> usize {
    let mut n = 0;
    let mut it = s.chars();
    while let Some(c) = it.next() {
        match c {
            '\\' => {
                it.next();
            }
            '|' => n += 1,
            _ => {}
        }
    }
    n
}

#[test]
fn c0_controls_and_del_become_hex_escapes() {
    assert_eq!(escape("a\u{0}b"), "a\\x00b");
    assert_eq!(escape("\u{1b}[31mred\u{1b}[0m"), "\\x1b[31mred\\x1b[0m");
    assert_eq!(escape("bell\u{7}"), "bell\\x07");
    assert_eq!(escape("x\u{8}y\u{b}\u{c}\u{1f}"), "x\\x08y\\x0b\\x0c\\x1f");
    assert_eq!(escape("del\u{7f}"), "del\\x7f");
    assert_eq!(escape("over\rwrite"), "over\\rwrite");
    assert_eq!(escape("tab\there\nnext"), "tab\\there\\nnext");
}

#[test]
fn multi_line_text_keeps_its_lines_but_not_carriage_returns() {
    assert_eq!(escape_lines("one\n\ttwo"), "one\n\ttwo");
    assert!(matches!(escape_lines("one\n\ttwo"), Cow::Borrowed(_)));
    assert_eq!(
        escape_lines("one\rtwo\u{1b}]0;t\u{7}"),
        "one\\rtwo\\x1b]0;t\\x07"
    );
}

#[test]
fn c1_controls_become_unicode_escapes() {
    assert_eq!(escape("csi\u{9b}2J"), "csi\\u{9b}2J");
    assert_eq!(escape("\u{80}\u{85}\u{9f}"), "\\u{80}\\u{85}\\u{9f}");
    // Just outside the range: a visible character.
    assert_eq!(escape("\u{a0}é"), "\u{a0}é");
}

#[test]
fn every_bidi_control_is_escaped() {
    let bidi = [
        0x61c, 0x200e, 0x200f, 0x202a, 0x202b, 0x202c, 0x202d, 0x202e, 0x2066, 0x2067, 0x2068,
        0x2069,
    ];
    for cp in bidi {
        let c = char::from_u32(cp).unwrap();
        let s = format!("abc{c}def");
        assert_eq!(escape(&s), format!("abc\\u{{{cp:x}}}def"), "U+{cp:04X}");
        assert!(needs_escape(c));
    }
}

#[test]
fn invisible_format_characters_are_escaped() {
    for (s, want) in [
        ("a\u{200b}b", "a\\u{200b}b"),
        ("a\u{200d}b", "a\\u{200d}b"),
        ("a\u{2060}b", "a\\u{2060}b"),
        ("\u{feff}bom", "\\u{feff}bom"),
        ("soft\u{ad}hyphen", "soft\\u{ad}hyphen"),
        ("line\u{2028}sep", "line\\u{2028}sep"),
        ("tag\u{e0041}\u{e007f}", "tag\\u{e0041}\\u{e007f}"),
        ("vs\u{e0100}", "vs\\u{e0100}"),
        ("fill\u{3164}er", "fill\\u{3164}er"),
    ] {
        assert_eq!(escape(s), want);
    }
}

#[test]
fn clean_strings_are_borrowed_not_copied() {
    for s in [
        "",
        "plain ascii: [Perf] Faster sampler (#1234)",
        "meta-llama/Llama-3.1-8B-Instruct",
        "ünïcödé 日本語 ✅ ⚠️ — ±2.0 % → ok",
        "emoji with a variation selector ⚠\u{fe0f}",
    ] {
        for out in [escape(s), escape_lines(s), cell(s), md_cell(s)] {
            match out {
                Cow::Borrowed(b) => assert_eq!(b.as_ptr(), s.as_ptr(), "{s:?}"),
                Cow::Owned(o) => panic!("{s:?} was copied into {o:?}"),
            }
        }
    }
}

#[test]
fn cells_are_one_line_with_single_spaces() {
    assert_eq!(cell("  fix\tthe\n\nbug  "), "fix the bug");
    assert_eq!(cell("a\r\nb"), "a b");
    assert_eq!(cell("a\u{2029}b\u{85}c"), "a b c");
    assert_eq!(cell("x\u{1b}[2J y"), "x\\x1b[2J y");
    assert!(matches!(cell("one two"), Cow::Borrowed(_)));
    assert!(matches!(cell("one  two"), Cow::Owned(_)));
}

#[test]
fn markdown_cells_keep_the_table_intact() {
    assert_eq!(md_cell("a | b"), "a \\| b");
    assert_eq!(md_cell("path\\|x"), "path\\\\\\|x");
    assert_eq!(md_cell("<script>&"), "&lt;script&gt;&amp;");
    // A link or image whose text hides its target is shown as text.
    assert_eq!(
        md_cell("[fix](http://evil.example) ![x](http://t.example/p.png)"),
        "[fix\\](http://evil.example) ![x\\](http://t.example/p.png)"
    );
    assert_eq!(md_cell("[a][ref]"), "[a\\][ref]");
    assert_eq!(md_cell("[Perf] Faster sampler"), "[Perf] Faster sampler");
    assert_eq!(md_cell("row\n| fake | row |"), "row \\| fake \\| row \\|");
    assert_eq!(md_cell("esc\u{1b}x"), "esc\\\\x1bx");
    for s in ["a|b", "a\\|b", "a\\\\|b", "\\", "|", "x\n|\n|"] {
        assert_eq!(bare_pipes(&md_cell(s)), 0, "{s:?}");
    }
}

#[test]
fn markdown_code_spans_cannot_be_closed_early() {
    assert_eq!(md_code("x"), "`x`");
    assert_eq!(md_code("a`b"), "``a`b``");
    assert_eq!(md_code("``x"), "``` ``x ```");
    assert_eq!(md_code("a|b"), "`a\\|b`");
    assert_eq!(md_code("a\\|b"), "`a\\\\\\|b`");
    assert_eq!(md_code("a\\\\|b"), "`a\\\\\\|b`");
    assert_eq!(md_code(""), "");
    assert_eq!(md_code("a\n\u{202e}b"), "`a \\u{202e}b`");
    for s in ["a|b", "a\\|b", "\\\\\\|", "`|`"] {
        assert_eq!(bare_pipes(&md_code(s)), 0, "{s:?}");
    }
}

#[test]
fn json_escapes_what_json_allows_raw_and_stays_the_same_value() {
    let v = serde_json::json!({
        "subject": "x\u{1b}[31m\u{0}\u{9b}\u{202e}\u{7f}\u{e0041}é",
        "list": ["ok", "\u{2066}"],
    });
    let text = json_pretty(&v).unwrap();
    assert!(!has_raw(&text.replace('\n', "")), "{text}");
    assert!(text.contains("\\u001b"), "{text}");
    assert!(text.contains("\\u009b"), "{text}");
    assert!(text.contains("\\u202e"), "{text}");
    assert!(text.contains("\\udb40\\udc41"), "{text}");
    assert!(
        text.contains('é'),
        "other characters stay as they are: {text}"
    );
    let back: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(back, v);
    assert_eq!(
        json_pretty(&serde_json::json!({"a": [1]})).unwrap(),
        serde_json::to_string_pretty(&serde_json::json!({"a": [1]})).unwrap()
    );
}

proptest! {
    #[test]
    fn nothing_raw_survives(s in "\\PC*|[\\x00-\\x1f\\x7f-\\u{9f}\\u{200b}-\\u{206f}a|\\\\`]*") {
        prop_assert!(!has_raw(&escape(&s)));
        prop_assert!(!has_raw(&escape_lines(&s).replace(['\n', '\t'], "")));
        let c = cell(&s);
        prop_assert!(!has_raw(&c));
        prop_assert!(!c.contains("  "));
        let m = md_cell(&s);
        prop_assert!(!has_raw(&m));
        prop_assert_eq!(bare_pipes(&m), 0);
        let code = md_code(&s);
        prop_assert!(!has_raw(&code));
        prop_assert_eq!(bare_pipes(&code), 0);
        let json = json_pretty(&s).unwrap();
        prop_assert!(!has_raw(&json));
        prop_assert_eq!(serde_json::from_str::<String>(&json).unwrap(), s);
    }
}
