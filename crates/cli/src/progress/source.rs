//! The source excerpt BuildKit prints under a warning or lint result (`errdefs.Source.Print`):
//! `Dockerfile:2`, a dashed rule, the lines around the range numbered with `>>>` on the range's
//! own lines, and a closing rule.

/// The excerpt of `data` (the file named `filename`) around `ranges` (1-based start and end
/// lines), exactly as `errdefs.Source.Print` writes it; empty when there are no ranges or the
/// first line is outside the file.
pub fn print_source(filename: &str, data: &[u8], ranges: &[(i32, i32)]) -> String {
    let text = String::from_utf8_lossy(data);
    // Go's strings.Split: a trailing newline leaves an empty last line, which is shown.
    let lines: Vec<&str> = text.split('\n').collect();
    let Some(first) = ranges.first() else {
        return String::new();
    };
    let mut start = first.0;
    let mut end = first.0.max(first.1);
    for &(s, e) in &ranges[1..] {
        start = start.min(s);
        end = end.max(e.max(s));
    }
    let count = lines.len() as i32;
    if start > count || start < 1 {
        return String::new();
    }
    end = end.min(count);
    // Context lines: four around a one-line range, two around a longer one, taken from
    // either side while there are lines there.
    let pad = if end == start { 4 } else { 2 };
    let shown_from = start;
    let mut p = 0;
    while p < pad {
        if start > 1 {
            start -= 1;
            p += 1;
        }
        if end != count {
            end += 1;
            p += 1;
        }
        p += 1;
    }
    let mut out = format!("{filename}:{shown_from}\n--------------------\n");
    for i in start..=end {
        let marked = ranges.iter().any(|&(s, e)| s <= i && e.max(s) >= i);
        let prefix = if marked { ">>>" } else { "   " };
        out.push_str(&format!(" {i:>3} | {prefix} {}\n", lines[(i - 1) as usize]));
    }
    out.push_str("--------------------\n");
    out
}

#[cfg(test)]
mod tests {
    use super::print_source;

    const DOCKERFILE: &str =
        "FROM busybox as base\nMAINTAINER me\nARG VERSION=1.0\n# flavour\nARG FLAVOUR\n";

    #[test]
    fn a_first_line_gets_the_next_two() {
        assert_eq!(
            print_source("Dockerfile", DOCKERFILE.as_bytes(), &[(1, 1)]),
            "Dockerfile:1\n--------------------\n   1 | >>> FROM busybox as base\n   2 |     MAINTAINER me\n   3 |     ARG VERSION=1.0\n--------------------\n"
        );
    }

    #[test]
    fn an_inner_line_gets_one_before_and_two_after() {
        assert_eq!(
            print_source("Dockerfile", DOCKERFILE.as_bytes(), &[(2, 2)]),
            "Dockerfile:2\n--------------------\n   1 |     FROM busybox as base\n   2 | >>> MAINTAINER me\n   3 |     ARG VERSION=1.0\n   4 |     # flavour\n--------------------\n"
        );
    }

    #[test]
    fn the_empty_line_after_the_last_newline_is_shown() {
        let text = "FROM a as b\nCOPY x y\n";
        assert_eq!(
            print_source("Dockerfile", text.as_bytes(), &[(1, 1)]),
            "Dockerfile:1\n--------------------\n   1 | >>> FROM a as b\n   2 |     COPY x y\n   3 |     \n--------------------\n"
        );
    }

    #[test]
    fn a_multi_line_range_gets_less_context() {
        let text = "a\nb\nc\nd\ne\nf\n";
        assert_eq!(
            print_source("f", text.as_bytes(), &[(3, 4)]),
            "f:3\n--------------------\n   2 |     b\n   3 | >>> c\n   4 | >>> d\n   5 |     e\n--------------------\n"
        );
    }

    #[test]
    fn nothing_without_ranges_or_outside_the_file() {
        assert_eq!(print_source("f", b"a\n", &[]), "");
        assert_eq!(print_source("f", b"a\n", &[(5, 5)]), "");
        assert_eq!(print_source("f", b"a\n", &[(0, 0)]), "");
    }
}
