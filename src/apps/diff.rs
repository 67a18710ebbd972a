//! Line diffs between two prompt versions (longest common subsequence; templates are short).

use serde::Serialize;

/// One line of a diff.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DiffLine {
    /// `equal`, `insert` or `delete`.
    pub op: &'static str,
    /// `system` or `user`: which template the line is in.
    pub part: &'static str,
    pub text: String,
}

/// The most lines a side may have before the diff gives up on alignment and shows delete + insert.
const MAX_LINES: usize = 2000;

/// The lines of `old` and `new` marked as kept, deleted or inserted, in order.
pub fn lines(part: &'static str, old: &str, new: &str) -> Vec<DiffLine> {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let line = |op, text: &str| DiffLine {
        op,
        part,
        text: text.to_string(),
    };
    if a.len() > MAX_LINES || b.len() > MAX_LINES {
        return a
            .iter()
            .map(|t| line("delete", t))
            .chain(b.iter().map(|t| line("insert", t)))
            .collect();
    }
    // lcs[i][j]: the longest common subsequence of a[i..] and b[j..].
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::with_capacity(a.len().max(b.len()));
    while i < a.len() && j < b.len() {
        if a[i] == b[j] {
            out.push(line("equal", a[i]));
            i += 1;
            j += 1;
        } else if lcs[i + 1][j] >= lcs[i][j + 1] {
            out.push(line("delete", a[i]));
            i += 1;
        } else {
            out.push(line("insert", b[j]));
            j += 1;
        }
    }
    out.extend(a[i..].iter().map(|t| line("delete", t)));
    out.extend(b[j..].iter().map(|t| line("insert", t)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_changed_lines() {
        let d = lines("system", "a\nb\nc", "a\nx\nc\nd");
        let ops: Vec<(&str, &str)> = d.iter().map(|l| (l.op, l.text.as_str())).collect();
        assert_eq!(
            ops,
            vec![
                ("equal", "a"),
                ("delete", "b"),
                ("insert", "x"),
                ("equal", "c"),
                ("insert", "d")
            ]
        );
    }
}
