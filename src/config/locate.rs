//! Finding things in the configuration's YAML: the line a key is on (for errors that span
//! several keys, and for duplicate keys, which the YAML parser reports only by the
//! mapping they are in), and the value a `--set key.path=value` replaces.
//!
//! What does not belong here: what the keys mean and which values are good (`mod.rs`,
//! `values.rs`).

use serde_norway::Value;

/// Why a `--set` key path does not lead to a value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PathError {
    #[error("unknown key `{key}` (known here: {known})")]
    UnknownKey { key: String, known: String },
    #[error("`{0}` is not a list index (use a number or *)")]
    NotAnIndex(String),
    #[error("index {index} is out of range: the list has {len} entries")]
    OutOfRange { index: usize, len: usize },
    #[error("`{0}`: the key above it is not a section")]
    NotASection(String),
}

/// Sets the value at `path` (`*` for every item of a list) in a parsed configuration.
pub(super) fn set_path(tree: &mut Value, path: &[&str], value: Value) -> Result<(), PathError> {
    let Some((head, rest)) = path.split_first() else {
        *tree = value;
        return Ok(());
    };
    match tree {
        Value::Mapping(map) => {
            let key = Value::String((*head).to_string());
            if !map.contains_key(&key) {
                let known: Vec<String> = map
                    .keys()
                    .filter_map(|k| k.as_str().map(str::to_string))
                    .collect();
                return Err(PathError::UnknownKey {
                    key: (*head).to_string(),
                    known: known.join(", "),
                });
            }
            set_path(map.get_mut(&key).expect("checked"), rest, value)
        }
        Value::Sequence(seq) => {
            if *head == "*" {
                for item in seq.iter_mut() {
                    set_path(item, rest, value.clone())?;
                }
                Ok(())
            } else {
                let i: usize = head
                    .parse()
                    .map_err(|_| PathError::NotAnIndex((*head).to_string()))?;
                let len = seq.len();
                let item = seq
                    .get_mut(i)
                    .ok_or(PathError::OutOfRange { index: i, len })?;
                set_path(item, rest, value)
            }
        }
        _ => Err(PathError::NotASection((*head).to_string())),
    }
}

/// For a "duplicate field `key`" error, the line of the second `key:` in the mapping the
/// error names (`at line L column C`: where the mapping starts; none: the top level).
pub(super) fn duplicate_key_line(text: &str, msg: &str) -> Option<usize> {
    let key = msg.split("duplicate field `").nth(1)?.split('`').next()?;
    let (from, column) = match msg.rsplit_once(" at line ") {
        Some((_, at)) => {
            let mut it = at.split(" column ");
            let l: usize = it.next()?.trim().parse().ok()?;
            let c: usize = it
                .next()?
                .trim()
                .split(|ch: char| !ch.is_ascii_digit())
                .next()?
                .parse()
                .ok()?;
            (l - 1, c - 1)
        }
        None => (0, 0),
    };
    text.lines()
        .enumerate()
        .skip(from)
        .filter(|(n, l)| {
            // On the mapping's first line the key may follow a `- `.
            let body = if *n == from {
                l.get(column..).unwrap_or("")
            } else {
                l
            };
            let indent = if *n == from {
                column
            } else {
                l.len() - l.trim_start().len()
            };
            indent == column
                && body
                    .trim_start()
                    .strip_prefix(key)
                    .is_some_and(|r| r.trim_start().starts_with(':'))
        })
        .map(|(n, _)| n + 1)
        .nth(1)
}

/// Finds the 1-based line of a key path in block-style YAML (`["cameras", "1", "fps"]`).
/// Good enough for naming the line of a cross-key error; `None` if not found.
pub(super) fn line_of(text: &str, path: &[&str]) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let mut start = 0;
    let mut min_indent = 0usize;
    let mut found = None;
    for part in path {
        if let Ok(index) = part.parse::<usize>() {
            // The index-th sequence item below the current position.
            let mut seen = 0;
            let mut hit = None;
            for (n, l) in lines.iter().enumerate().skip(start) {
                let indent = l.len() - l.trim_start().len();
                let t = l.trim_start();
                if t.is_empty() || t.starts_with('#') {
                    continue;
                }
                if indent < min_indent {
                    break;
                }
                if t.starts_with("- ") || t == "-" {
                    if seen == index {
                        hit = Some((n, indent + 2));
                        break;
                    }
                    seen += 1;
                }
            }
            let (n, ind) = hit?;
            // Keys of the item may sit on the dash line itself.
            start = n;
            min_indent = ind;
            found = Some(n);
            continue;
        }
        // A key inside a flow mapping on the parent's line: `resolution: {width: 400, ...}`.
        if let Some(n) = found {
            let l = lines[n];
            if let Some(brace) = l.find('{') {
                if l[brace..].contains(&format!("{part}:")) {
                    start = n + 1;
                    continue;
                }
            }
        }
        let mut hit = None;
        for (n, l) in lines.iter().enumerate().skip(start) {
            let t = l.trim_start().trim_start_matches("- ");
            let indent = l.len() - t.len();
            if l.trim().is_empty() || l.trim_start().starts_with('#') {
                continue;
            }
            if n > start && indent < min_indent {
                break;
            }
            if t.starts_with(&format!("{part}:")) {
                hit = Some((n, indent + 1));
                break;
            }
        }
        let (n, ind) = hit?;
        start = n + 1;
        min_indent = ind;
        found = Some(n);
    }
    found.map(|n| n + 1)
}
