//! The streaming normaliser equals a plain reference of the Python service's rules
//! (CRLF -> LF, stamps removed, `\n{3,}` -> `\n\n`, `str.strip()`), however the input is cut.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use onex_core::stamp::{LineKind, Normalizer, RICH_END, RICH_START, classify_line, normalized_hash, strip_stamps};
use proptest::prelude::*;

fn find(hay: &[u8], needle: &str) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle.as_bytes())
}

/// The rules written the obvious way, in the Python service's order.
fn reference(text: &str) -> String {
    let text = text.replace("\r\n", "\n");
    let mut kept = Vec::new();
    let mut in_block = false;
    for line in text.as_bytes().split_inclusive(|&b| b == b'\n') {
        if in_block {
            in_block = find(line, RICH_END).is_none();
            continue;
        }
        match classify_line(line) {
            LineKind::Content => kept.extend_from_slice(line),
            LineKind::Lightweight => {}
            LineKind::RichStart => {
                let after = find(line, RICH_START).unwrap() + RICH_START.len();
                in_block = find(&line[after..], RICH_END).is_none();
            }
        }
    }
    let mut collapsed = String::new();
    let mut newlines = 0;
    for c in String::from_utf8(kept).unwrap().chars() {
        newlines = if c == '\n' { newlines + 1 } else { 0 };
        if newlines <= 2 {
            collapsed.push(c);
        }
    }
    let py_space = |c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c);
    collapsed.trim_matches(py_space).to_owned()
}

fn streamed(bytes: &[u8], cuts: &[usize]) -> (Vec<u8>, usize) {
    let mut out = Vec::new();
    let mut n = Normalizer::new();
    let mut start = 0;
    for &cut in cuts {
        let cut = cut.clamp(start, bytes.len());
        n.push(&bytes[start..cut], &mut |b: &[u8]| out.extend_from_slice(b));
        start = cut;
    }
    n.push(&bytes[start..], &mut |b: &[u8]| out.extend_from_slice(b));
    let outcome = n.finish(&mut |b: &[u8]| out.extend_from_slice(b));
    (out, outcome.filter.found_total())
}

fn fragment() -> impl Strategy<Value = String> {
    let long_blank = " ".repeat(70);
    prop_oneof![
        Just("a".to_owned()),
        Just("word ".to_owned()),
        Just("\n".to_owned()),
        Just("\n\n\n".to_owned()),
        Just("\r".to_owned()),
        Just("\r\n".to_owned()),
        Just(" ".to_owned()),
        Just("\t".to_owned()),
        Just("\u{a0}".to_owned()),
        Just("\u{3000}".to_owned()),
        Just("\u{1c}".to_owned()),
        Just("é".to_owned()),
        Just("# ONEX:uid=1,hash=2".to_owned()),
        Just("// ONEX:".to_owned()),
        Just("<!-- ONEX:uid=x -->".to_owned()),
        Just("ONEX".to_owned()),
        Just("#".to_owned()),
        Just(RICH_START.to_owned()),
        Just(RICH_END.to_owned()),
        Just(long_blank),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn streaming_equals_the_reference_however_cut(
        parts in prop::collection::vec(fragment(), 0..40),
        cuts in prop::collection::vec(0usize..400, 0..8),
    ) {
        let text: String = parts.concat();
        let mut cuts = cuts;
        cuts.sort_unstable();
        let (out, _) = streamed(text.as_bytes(), &cuts);
        prop_assert_eq!(String::from_utf8(out).unwrap(), reference(&text), "input {:?} cuts {:?}", text, cuts);
        let whole = normalized_hash(text.as_bytes());
        prop_assert_eq!(whole.hash, blake3::hash(reference(&text).as_bytes()));
    }

    #[test]
    fn found_stamps_do_not_depend_on_chunking(
        parts in prop::collection::vec(fragment(), 0..40),
        cuts in prop::collection::vec(0usize..400, 0..8),
    ) {
        let text: String = parts.concat();
        let mut cuts = cuts;
        cuts.sort_unstable();
        let (_, count) = streamed(text.as_bytes(), &cuts);
        prop_assert_eq!(count, normalized_hash(text.as_bytes()).stamp_count);
    }

    #[test]
    fn stripping_twice_changes_nothing(parts in prop::collection::vec(fragment(), 0..40)) {
        let text: String = parts.concat();
        let once = strip_stamps(text.as_bytes());
        prop_assert_eq!(strip_stamps(&once), once.clone());
        prop_assert_eq!(normalized_hash(&once).hash, normalized_hash(text.as_bytes()).hash);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512), cut in 0usize..512) {
        let (a, _) = streamed(&bytes, &[cut]);
        let (b, _) = streamed(&bytes, &[]);
        prop_assert_eq!(a, b);
    }
}

#[test]
fn huge_content_in_small_chunks_matches_one_shot() {
    let unit = "def f():\n    return 1\n\n\n# ONEX:uid=1\r\nx = '\u{a0}'\n";
    let text = unit.repeat(5000);
    let cuts: Vec<usize> = (1..text.len()).step_by(4093).collect();
    let (out, count) = streamed(text.as_bytes(), &cuts);
    assert_eq!(String::from_utf8(out).unwrap(), reference(&text));
    assert_eq!(count, 5000, "every stamp line is found and removed");
}
