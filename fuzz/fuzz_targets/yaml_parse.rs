//! `onex_core::yaml::parse`: never panics; every node of a tree, and the position of an error,
//! lies inside the input; a tree keeps within the bounds the parser promises (nesting depth,
//! node count, aliases included); parsing is deterministic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use onex_core::yaml::{self, MAX_DEPTH, MAX_NODES, Node, Value};
use onex_fuzz::Extent;

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else { return };
    let extent = Extent::of(text);
    let parsed = yaml::parse(text);
    match &parsed {
        Ok(root) => {
            // Iterative walk: (node, nesting depth of the collection it is).
            let (mut nodes, mut deepest) = (0usize, 0usize);
            let mut pending: Vec<(&Node, usize)> = vec![(root, 0)];
            while let Some((node, depth)) = pending.pop() {
                nodes += 1;
                assert!(extent.contains(node.pos), "node outside the input: {:?} at {:?}", node.value, node.pos);
                match &node.value {
                    Value::Scalar { .. } | Value::Include(_) => {}
                    Value::Seq(items) => {
                        deepest = deepest.max(depth + 1);
                        pending.extend(items.iter().map(|n| (n, depth + 1)));
                    }
                    Value::Map(entries) => {
                        deepest = deepest.max(depth + 1);
                        pending.extend(entries.iter().flat_map(|(k, v)| [(k, depth + 1), (v, depth + 1)]));
                    }
                }
            }
            assert!(deepest <= MAX_DEPTH, "a tree {deepest} collections deep (the bound is {MAX_DEPTH})");
            assert!(nodes <= MAX_NODES, "a tree of {nodes} nodes (the bound is {MAX_NODES})");
        }
        Err(e) => {
            assert!(extent.contains(e.pos), "error outside the input: {e:?}");
            assert!(!e.message.is_empty(), "error without a message: {e:?}");
        }
    }
    assert_eq!(parsed, yaml::parse(text), "parsing the same text twice differs");
});
