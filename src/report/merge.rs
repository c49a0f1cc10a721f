//! Three-way merge of YAML values: two fixes that each change a copy of the same object are
//! combined against the object as it was, so that applying the result keeps both changes.
//! Where both change the same field differently, or a list cannot be lined up, there is no merge.

use serde_yaml::{Mapping, Value};

/// `ours` and `theirs` both derived from `base`: a value with the changes of both, or `None`
/// when they conflict.
pub fn merge3(base: &Value, ours: &Value, theirs: &Value) -> Option<Value> {
    if ours == theirs || theirs == base {
        return Some(ours.clone());
    }
    if ours == base {
        return Some(theirs.clone());
    }
    match (base, ours, theirs) {
        (Value::Mapping(base), Value::Mapping(ours), Value::Mapping(theirs)) => {
            merge_mappings(base, ours, theirs).map(Value::Mapping)
        }
        (Value::Sequence(base), Value::Sequence(ours), Value::Sequence(theirs)) => {
            merge_sequences(base, ours, theirs).map(Value::Sequence)
        }
        _ => None,
    }
}

/// A key present on some sides: merged, removed (`Some(None)`), or in conflict (`None`).
fn merge_entry(
    base: Option<&Value>,
    ours: Option<&Value>,
    theirs: Option<&Value>,
) -> Option<Option<Value>> {
    if ours == theirs || theirs == base {
        return Some(ours.cloned());
    }
    if ours == base {
        return Some(theirs.cloned());
    }
    match (base, ours, theirs) {
        (Some(base), Some(ours), Some(theirs)) => merge3(base, ours, theirs).map(Some),
        _ => None,
    }
}

fn merge_mappings(base: &Mapping, ours: &Mapping, theirs: &Mapping) -> Option<Mapping> {
    let mut merged = Mapping::new();
    let keys = ours
        .keys()
        .chain(theirs.keys().filter(|key| !ours.contains_key(*key)));
    for key in keys {
        if let Some(value) = merge_entry(base.get(key), ours.get(key), theirs.get(key))? {
            merged.insert(key.clone(), value);
        }
    }
    Some(merged)
}

/// What one side did to a base element.
#[derive(Debug, Clone, PartialEq)]
enum Change {
    Keep,
    Delete,
    Modify(Value),
}

/// One side of a list against its base: per base element what happened to it, and the elements
/// inserted before each base position (`inserts[base.len()]` at the end).
#[derive(Debug)]
struct Aligned {
    changes: Vec<Change>,
    inserts: Vec<Vec<Value>>,
}

/// Lines a side up with the base by its longest run of equal elements; between two equal
/// elements, as many base as side elements are modifications in order, only base elements are
/// deletions, only side elements insertions. Anything else is ambiguous: `None`.
fn align(base: &[Value], side: &[Value]) -> Option<Aligned> {
    let mut changes = vec![Change::Keep; base.len()];
    let mut inserts = vec![Vec::new(); base.len() + 1];
    let mut anchors = common_subsequence(base, side);
    anchors.push((base.len(), side.len()));
    let (mut base_from, mut side_from) = (0, 0);
    for (base_at, side_at) in anchors {
        let base_gap = base_at - base_from;
        let side_gap = side_at - side_from;
        if base_gap == side_gap {
            for offset in 0..base_gap {
                let value = &side[side_from + offset];
                if *value != base[base_from + offset] {
                    changes[base_from + offset] = Change::Modify(value.clone());
                }
            }
        } else if side_gap == 0 {
            for change in &mut changes[base_from..base_at] {
                *change = Change::Delete;
            }
        } else if base_gap == 0 {
            inserts[base_from].extend(side[side_from..side_at].iter().cloned());
        } else {
            return None;
        }
        base_from = base_at + 1;
        side_from = side_at + 1;
    }
    Some(Aligned { changes, inserts })
}

/// Index pairs of a longest common subsequence of equal elements, in order.
fn common_subsequence(base: &[Value], side: &[Value]) -> Vec<(usize, usize)> {
    let (rows, columns) = (base.len(), side.len());
    let mut lengths = vec![vec![0usize; columns + 1]; rows + 1];
    for row in (0..rows).rev() {
        for column in (0..columns).rev() {
            lengths[row][column] = if base[row] == side[column] {
                lengths[row + 1][column + 1] + 1
            } else {
                lengths[row + 1][column].max(lengths[row][column + 1])
            };
        }
    }
    let mut pairs = Vec::new();
    let (mut row, mut column) = (0, 0);
    while row < rows && column < columns {
        if base[row] == side[column] {
            pairs.push((row, column));
            row += 1;
            column += 1;
        } else if lengths[row + 1][column] >= lengths[row][column + 1] {
            row += 1;
        } else {
            column += 1;
        }
    }
    pairs
}

fn merge_sequences(base: &[Value], ours: &[Value], theirs: &[Value]) -> Option<Vec<Value>> {
    let ours = align(base, ours)?;
    let theirs = align(base, theirs)?;
    let mut merged = Vec::new();
    for index in 0..=base.len() {
        let (our_inserts, their_inserts) = (&ours.inserts[index], &theirs.inserts[index]);
        match (our_inserts.is_empty(), their_inserts.is_empty()) {
            (false, false) if our_inserts != their_inserts => return None,
            (false, _) => merged.extend(our_inserts.iter().cloned()),
            (true, false) => merged.extend(their_inserts.iter().cloned()),
            (true, true) => {}
        }
        let Some(original) = base.get(index) else {
            break;
        };
        match (&ours.changes[index], &theirs.changes[index]) {
            (Change::Keep, Change::Keep) => merged.push(original.clone()),
            (Change::Delete, Change::Keep | Change::Delete) | (Change::Keep, Change::Delete) => {}
            (Change::Modify(value), Change::Keep) | (Change::Keep, Change::Modify(value)) => {
                merged.push(value.clone());
            }
            (Change::Modify(our), Change::Modify(their)) => {
                merged.push(merge3(original, our, their)?);
            }
            (Change::Delete, Change::Modify(_)) | (Change::Modify(_), Change::Delete) => {
                return None;
            }
        }
    }
    Some(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Value {
        serde_yaml::from_str(text).unwrap()
    }

    #[test]
    fn changes_to_different_fields_both_survive() {
        let base = yaml("{a: 1, b: {c: 2, d: 3}, e: 4}");
        let ours = yaml("{a: 10, b: {c: 2, d: 3}}");
        let theirs = yaml("{a: 1, b: {c: 2, d: 30}, e: 4, f: 5}");
        let merged = merge3(&base, &ours, &theirs).unwrap();
        assert_eq!(merged, yaml("{a: 10, b: {c: 2, d: 30}, f: 5}"));
    }

    #[test]
    fn the_same_field_changed_two_ways_conflicts() {
        let base = yaml("{timeout: 30s}");
        assert!(merge3(&base, &yaml("{timeout: 300s}"), &yaml("{timeout: 600s}")).is_none());
        assert!(
            merge3(&base, &yaml("{}"), &yaml("{timeout: 600s}")).is_none(),
            "removed on one side, changed on the other"
        );
        assert_eq!(
            merge3(&base, &yaml("{timeout: 300s}"), &yaml("{timeout: 300s}")),
            Some(yaml("{timeout: 300s}"))
        );
    }

    #[test]
    fn a_removed_list_element_and_a_changed_one_merge() {
        // The buffer-limit example: one fix drops the Lua patch, the other raises the buffer.
        let base = yaml("[{name: lua}, {name: listener, limit: 32768}]");
        let ours = yaml("[{name: listener, limit: 32768}]");
        let theirs = yaml("[{name: lua}, {limit: 1048576, name: listener}]");
        let merged = merge3(&base, &ours, &theirs).unwrap();
        assert_eq!(merged, yaml("[{name: listener, limit: 1048576}]"));
        let swapped = merge3(&base, &theirs, &ours).unwrap();
        assert_eq!(swapped, merged);
    }

    #[test]
    fn list_insertions_at_different_places_merge_and_at_one_place_conflict() {
        let base = yaml("[a, b]");
        assert_eq!(
            merge3(&base, &yaml("[x, a, b]"), &yaml("[a, b, y]")),
            Some(yaml("[x, a, b, y]"))
        );
        assert!(merge3(&base, &yaml("[a, x, b]"), &yaml("[a, y, b]")).is_none());
        assert_eq!(
            merge3(&base, &yaml("[a, x, b]"), &yaml("[a, x, b]")),
            Some(yaml("[a, x, b]"))
        );
    }

    #[test]
    fn a_deleted_element_that_the_other_side_changed_conflicts() {
        let base = yaml("[{n: 1}, {n: 2}]");
        assert!(merge3(&base, &yaml("[{n: 2}]"), &yaml("[{n: 10}, {n: 2}]")).is_none());
    }

    #[test]
    fn scalars_of_different_kinds_conflict() {
        assert!(merge3(&yaml("1"), &yaml("[1]"), &yaml("{a: 1}")).is_none());
    }
}
