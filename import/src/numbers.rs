//! Keeps item numbers unique within a document.
//!
//! The parser numbers an item by its path (`3.(1).一`), so numbers below a heading never
//! collide. Only top-level items can: a document that starts mid-way (continued from a previous
//! page) has orphan items whose own parents were never seen, and an orphan `二是…` at the top
//! has the number `二`, the same as a later chapter `二、`. Such a top-level item has no parent
//! path to prefix, so the later one gets a suffix `#2` (`#3`, …): `二#2`, and its children
//! `二#2.(一)`. The first keeps its number. Nothing else is renumbered.

use std::collections::HashSet;

use crate::DraftItem;

/// Makes the numbers of `items` unique; returns `(old, new)` for every top-level item renamed.
pub fn make_unique(items: &mut [DraftItem]) -> Vec<(String, String)> {
    let mut seen: HashSet<String> = HashSet::new();
    let mut renamed = Vec::new();
    for item in items.iter_mut() {
        if seen.contains(&item.number) {
            let mut k = 2;
            let new = loop {
                let candidate = format!("{}#{k}", item.number);
                if !seen.contains(&candidate) {
                    break candidate;
                }
                k += 1;
            };
            let old = item.number.clone();
            rename(item, &old, &new);
            renamed.push((old, new));
        }
        collect(item, &mut seen);
    }
    renamed
}

fn rename(item: &mut DraftItem, old: &str, new: &str) {
    if item.number == old {
        item.number = new.to_string();
    } else if let Some(rest) = item.number.strip_prefix(&format!("{old}.")) {
        item.number = format!("{new}.{rest}");
    }
    for c in &mut item.children {
        rename(c, old, new);
    }
}

fn collect(item: &DraftItem, seen: &mut HashSet<String>) {
    seen.insert(item.number.clone());
    for c in &item.children {
        collect(c, seen);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_document;

    #[test]
    fn later_top_level_duplicate_gets_a_suffix() {
        let mut doc = parse_document("二是持续强化科技创新。\n二、总体要求\n(一)组织领导").unwrap();
        let renamed = make_unique(&mut doc.items);
        assert_eq!(renamed, vec![("二".to_string(), "二#2".to_string())]);
        assert_eq!(doc.items[0].number, "二");
        assert_eq!(doc.items[1].number, "二#2");
        assert_eq!(doc.items[1].children[0].number, "二#2.(一)");
    }

    #[test]
    fn samples_need_no_renaming() {
        for text in [
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../shared/samples/inspection-rectification-notice.txt"
            )),
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../shared/samples/standing-meeting-minutes.txt"
            )),
        ] {
            let mut doc = parse_document(text).unwrap();
            assert!(make_unique(&mut doc.items).is_empty());
        }
    }
}
