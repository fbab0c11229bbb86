//! Content normalised in two parts (the first ended by `end_at_split`, the second by a
//! `continuing_at` pipeline) gives exactly the one-pass output and outcome whenever both ends
//! accept the cut, and the cuts where one pass would differ are refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use onex_core::stamp::{BodyInfo, FoundStamp, NormalizeOutcome, Normalizer, RICH_END, RICH_START};
use proptest::prelude::*;

/// What a normalisation gives: output, stamps kept, stamps counted, body.
type Normalized = (Vec<u8>, Vec<FoundStamp>, usize, BodyInfo);

fn facts(out: Vec<u8>, outcome: NormalizeOutcome) -> Normalized {
    let total = outcome.filter.found_total();
    (out, outcome.filter.found().to_vec(), total, outcome.body)
}

fn one_pass(text: &[u8]) -> Normalized {
    let mut out = Vec::new();
    let mut n = Normalizer::new();
    n.push(text, &mut |b: &[u8]| out.extend_from_slice(b));
    let outcome = n.finish(&mut |b: &[u8]| out.extend_from_slice(b));
    facts(out, outcome)
}

/// The two-part result, or `None` when either end refuses the cut at `at`.
fn two_parts(text: &[u8], at: usize) -> Option<Normalized> {
    let (mut first_out, mut second_out) = (Vec::new(), Vec::new());
    let mut first = Normalizer::new();
    first.push(&text[..at], &mut |b: &[u8]| first_out.extend_from_slice(b));
    let first = first.end_at_split(&mut |b: &[u8]| first_out.extend_from_slice(b)).ok()?;
    let mut second = Normalizer::continuing_at(at as u64, text.len() - at);
    second.push(&text[at..], &mut |b: &[u8]| second_out.extend_from_slice(b));
    let second = second.finish_continuing(&mut |b: &[u8]| second_out.extend_from_slice(b))?;
    first_out.extend_from_slice(&second_out);
    Some(facts(first_out, first.then(second)))
}

fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("a".to_owned()),
        Just("word\n".to_owned()),
        Just("x\ny".to_owned()),
        Just("\n".to_owned()),
        Just("\n\n\n".to_owned()),
        Just("\r\n".to_owned()),
        Just(" ".to_owned()),
        Just("\u{a0}".to_owned()),
        Just("é".to_owned()),
        Just("# ONEX:uid=1,hash=2\n".to_owned()),
        Just("// ONEX:".to_owned()),
        Just("ONEX".to_owned()),
        Just(format!("{RICH_START}\n")),
        Just(format!("{RICH_END}\n")),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn every_accepted_cut_equals_one_pass(parts in prop::collection::vec(fragment(), 0..40)) {
        let text: String = parts.concat();
        let bytes = text.as_bytes();
        let whole = one_pass(bytes);
        for at in (1..bytes.len()).filter(|&at| bytes[at - 1] == b'\n') {
            if let Some(split) = two_parts(bytes, at) {
                prop_assert_eq!(&split, &whole, "input {:?} cut at {}", text, at);
            }
        }
    }
}

#[test]
fn a_cut_between_two_lines_of_content_is_accepted_with_offsets_kept() {
    let text = b"# ONEX:uid=1\nfirst line\nsecond\n# ONEX:uid=2\nthird\n";
    let at = b"# ONEX:uid=1\nfirst line\n".len();
    let split = two_parts(text, at).expect("a cut between two lines of content is accepted");
    assert_eq!(split, one_pass(text));
    let offsets: Vec<u64> = split.1.iter().map(|s| s.offset).collect();
    assert_eq!(offsets, [0, 31], "the second part's stamps are placed in the whole content");
}

#[test]
fn whitespace_before_the_cut_is_kept_as_one_pass_keeps_it() {
    for (text, at) in [("a \nb\n", 3), ("a\n\n\n\nb\n", 5), ("\n\nb\n", 2)] {
        let split = two_parts(text.as_bytes(), at).unwrap_or_else(|| panic!("the cut of {text:?} at {at} is accepted"));
        assert_eq!(split, one_pass(text.as_bytes()), "{text:?}");
    }
}

#[test]
fn cuts_where_one_pass_would_differ_are_refused() {
    let refused = [
        // Inside a rich block: the second part would keep the block's lines.
        (format!("a\n{RICH_START}\nuid: 1\n{RICH_END}\nb\n"), "uid"),
        // Blank lines after the cut join the newlines before it into one run in one pass.
        ("a\n\nb\n".to_owned(), "\nb"),
        // Indentation after the cut: whitespace joins the pending newline.
        ("a\n  b\n".to_owned(), "  b"),
        // Only a stamp and whitespace after the cut: one pass trims the newline before it.
        ("a\n# ONEX:uid=1\n\n".to_owned(), "# ONEX"),
        // A stamp line, then a blank line: the blank joins the newline pending before the stamp.
        ("a\n# ONEX:uid=1\n\nb\n".to_owned(), "# ONEX"),
        // A CR held back before the cut: one pass would have joined it with the next LF.
        ("a\r\nb\r".to_owned(), "\nb"),
    ];
    for (text, second_starts_with) in refused {
        let at = text.find(second_starts_with).unwrap();
        assert!(two_parts(text.as_bytes(), at).is_none(), "the cut of {text:?} at {at} is refused");
    }
}
