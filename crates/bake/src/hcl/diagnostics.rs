//! HCL diagnostics as buildx reports them: `FILE:LINE,COL-COL: Summary; Detail`, and the
//! source snippet buildx prints above the `ERROR:` line.

use std::fmt;
use std::rc::Rc;

use crate::raw::Position;

/// A point in a source file: 1-based line and column (columns count characters, as HCL
/// counts them), and the byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Pos {
    pub line: usize,
    pub column: usize,
    pub byte: usize,
}

/// A range of source text, as HCL's `hcl.Range`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Span {
    pub file: Rc<str>,
    pub start: Pos,
    pub end: Pos,
}

impl Span {
    /// The range from the start of `self` to the end of `other` (HCL's `RangeBetween`).
    pub fn to(&self, other: &Span) -> Span {
        let start = if other.start.byte < self.start.byte {
            other.start
        } else {
            self.start
        };
        let end = if other.end.byte > self.end.byte {
            other.end
        } else {
            self.end
        };
        Span {
            file: self.file.clone(),
            start,
            end,
        }
    }

    /// An empty range at the start of `self`.
    pub fn start_point(&self) -> Span {
        Span {
            file: self.file.clone(),
            start: self.start,
            end: self.start,
        }
    }

    /// An empty range at the end of `self`.
    pub fn end_point(&self) -> Span {
        Span {
            file: self.file.clone(),
            start: self.end,
            end: self.end,
        }
    }

    /// The public form of the range.
    pub fn position(&self) -> Position {
        Position {
            file: self.file.to_string(),
            line: self.start.line,
            column: self.start.column,
            end_line: self.end.line,
            end_column: self.end.column,
        }
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", PositionDisplay(&self.position()))
    }
}

/// `hcl.Range.String()`: `FILE:LINE,COL-COL`, or `FILE:LINE,COL-LINE,COL` across lines.
struct PositionDisplay<'a>(&'a Position);

impl fmt::Display for PositionDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.0;
        if p.line == p.end_line {
            write!(f, "{}:{},{}-{}", p.file, p.line, p.column, p.end_column)
        } else {
            write!(
                f,
                "{}:{},{}-{},{}",
                p.file, p.line, p.column, p.end_line, p.end_column
            )
        }
    }
}

/// Maps byte offsets of one source file to HCL line/column positions.
#[derive(Debug, Clone)]
pub(crate) struct LineIndex {
    file: Rc<str>,
    text: Rc<str>,
    line_starts: Vec<usize>,
}

impl LineIndex {
    /// Indexes `text`, named `file` in positions.
    pub fn new(file: &str, text: &str) -> LineIndex {
        let mut line_starts = vec![0];
        for (i, b) in text.bytes().enumerate() {
            if b == b'\n' {
                line_starts.push(i + 1);
            }
        }
        LineIndex {
            file: Rc::from(file),
            text: Rc::from(text),
            line_starts,
        }
    }

    /// The position of a byte offset (clamped to the text).
    pub fn pos(&self, byte: usize) -> Pos {
        let byte = byte.min(self.text.len());
        let line = match self.line_starts.binary_search(&byte) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        let line_start = self.line_starts[line];
        let column = self
            .text
            .get(line_start..byte)
            .map_or(byte - line_start, |s| s.chars().count())
            + 1;
        Pos {
            line: line + 1,
            column,
            byte,
        }
    }

    /// The range of a byte range.
    pub fn span(&self, range: std::ops::Range<usize>) -> Span {
        Span {
            file: self.file.clone(),
            start: self.pos(range.start),
            end: self.pos(range.end),
        }
    }
}

/// One HCL error diagnostic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The short summary (`Unknown variable`).
    pub summary: String,
    /// The detail sentence (`There is no variable named "foo".`).
    pub detail: String,
    /// Where the problem is, when known.
    pub subject: Option<Position>,
}

impl fmt::Display for Diagnostic {
    /// `hcl.Diagnostic.Error()`: `SUBJECT: Summary; Detail`, with Go's `<nil>` for a
    /// missing subject.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.subject {
            Some(p) => write!(f, "{}", PositionDisplay(p))?,
            None => f.write_str("<nil>")?,
        }
        write!(f, ": {}; {}", self.summary, self.detail)
    }
}

/// A diagnostic inside the evaluator, its range still internal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Diag {
    pub summary: String,
    pub detail: String,
    pub subject: Option<Span>,
}

impl Diag {
    /// A diagnostic with a subject range.
    pub fn new(summary: impl Into<String>, detail: impl Into<String>, subject: &Span) -> Diag {
        Diag {
            summary: summary.into(),
            detail: detail.into(),
            subject: Some(subject.clone()),
        }
    }

    /// The public form.
    pub fn public(&self) -> Diagnostic {
        Diagnostic {
            summary: self.summary.clone(),
            detail: self.detail.clone(),
            subject: self.subject.as_ref().map(Span::position),
        }
    }
}

impl fmt::Display for Diag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.public().fmt(f)
    }
}

/// The text of several diagnostics joined as `hcl.Diagnostics.Error()` joins them.
pub(crate) fn diags_error_text(diags: &[Diag]) -> String {
    match diags {
        [] => "no diagnostics".to_string(),
        [one] => one.to_string(),
        [first, rest @ ..] => format!("{first}, and {} other diagnostic(s)", rest.len()),
    }
}

/// The error of reading bake files: HCL diagnostics, as buildx reports them.
///
/// `Display` is exactly the text buildx prints after `ERROR: ` (hcl.Diagnostics' `Error()`:
/// the first diagnostic, then `, and N other diagnostic(s)`). buildx also prints a source
/// snippet of the first diagnostic with a range above that line: [`Diagnostics::snippet`]
/// gives it, ready to be written to stderr before `ERROR: …`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Diagnostics {
    /// The diagnostics, in the order found.
    pub diagnostics: Vec<Diagnostic>,
    /// The name and contents of the file the snippet is taken from.
    snippet_source: Option<(String, String)>,
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.diagnostics.as_slice() {
            [] => f.write_str("no diagnostics"),
            [one] => one.fmt(f),
            [first, rest @ ..] => write!(f, "{first}, and {} other diagnostic(s)", rest.len()),
        }
    }
}

impl Diagnostics {
    /// Diagnostics from internal ones; `files` are the bake files (name, contents) so the
    /// snippet can be cut from the file the first placed diagnostic points into.
    pub(crate) fn from_diags(diags: &[Diag], files: &[(String, String)]) -> Diagnostics {
        let diagnostics: Vec<Diagnostic> = diags.iter().map(Diag::public).collect();
        // buildx attaches the source of the first diagnostic that has a subject; a file it
        // cannot find (renamed `.hcl`/`.json` for unknown extensions) leaves no snippet.
        let snippet_source = diagnostics
            .iter()
            .find_map(|d| d.subject.as_ref())
            .map(|subject| {
                let data = files
                    .iter()
                    .find(|(name, _)| *name == subject.file)
                    .map(|(_, data)| data.clone())
                    .unwrap_or_default();
                (subject.file.clone(), data)
            });
        Diagnostics {
            diagnostics,
            snippet_source,
        }
    }

    /// The source snippet buildx (buildkit's `errdefs.Source.Print`) prints above the error
    /// line: `FILE:LINE`, a rule, the lines around the first placed diagnostic with `>>>`
    /// marking its lines, a rule. `None` when buildx prints none.
    pub fn snippet(&self) -> Option<String> {
        let (file, data) = self.snippet_source.as_ref()?;
        let subject = self.diagnostics.iter().find_map(|d| d.subject.as_ref())?;
        let lines: Vec<&str> = data.split('\n').collect();
        let range_end = subject.end_line.max(subject.line);
        let mut start = subject.line;
        let mut end = range_end;
        if start > lines.len() || start < 1 {
            return None;
        }
        if end > lines.len() {
            end = lines.len();
        }
        let pad = if end == start { 4 } else { 2 };
        let mut p = 0;
        let first_line = start;
        while p < pad {
            if start > 1 {
                start -= 1;
                p += 1;
            }
            if end != lines.len() {
                end += 1;
                p += 1;
            }
            p += 1;
        }
        let mut out = format!("{file}:{first_line}\n--------------------\n");
        for (i, line) in lines.iter().enumerate().take(end).skip(start - 1) {
            let number = i + 1;
            let prefix = if subject.line <= number && range_end >= number {
                ">>>"
            } else {
                "   "
            };
            out.push_str(&format!(" {number:>3} | {prefix} {line}\n"));
        }
        out.push_str("--------------------\n");
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diag_at(file: &str, line: usize, col: usize, end_col: usize) -> Diagnostic {
        Diagnostic {
            summary: "Unsuitable value type".into(),
            detail: "Unsuitable value: string required".into(),
            subject: Some(Position {
                file: file.into(),
                line,
                column: col,
                end_line: line,
                end_column: end_col,
            }),
        }
    }

    #[test]
    fn display_joins_like_hcl_diagnostics_error() {
        let one = Diagnostics {
            diagnostics: vec![diag_at("c.hcl", 3, 16, 17)],
            snippet_source: None,
        };
        assert_eq!(
            one.to_string(),
            "c.hcl:3,16-17: Unsuitable value type; Unsuitable value: string required"
        );
        let two = Diagnostics {
            diagnostics: vec![diag_at("c.hcl", 3, 16, 17), diag_at("c.hcl", 4, 1, 2)],
            snippet_source: None,
        };
        assert!(two.to_string().ends_with(", and 1 other diagnostic(s)"));
        let unplaced = Diagnostic {
            summary: "A".into(),
            detail: "B".into(),
            subject: None,
        };
        assert_eq!(unplaced.to_string(), "<nil>: A; B");
    }

    #[test]
    fn snippet_matches_buildkit_source_print() {
        // The layout buildx printed for a 4-line file with an error on line 3.
        let data = "target \"t2\" {\n  foo = nope\n  dockerfile = [\"a\"]\n}\n";
        let diags = Diagnostics {
            diagnostics: vec![diag_at("c.hcl", 3, 16, 17)],
            snippet_source: Some(("c.hcl".into(), data.into())),
        };
        let expected = "c.hcl:3\n--------------------\n   1 |     target \"t2\" {\n   2 |       foo = nope\n   3 | >>>   dockerfile = [\"a\"]\n   4 |     }\n   5 |     \n--------------------\n";
        assert_eq!(diags.snippet().as_deref(), Some(expected));
    }

    #[test]
    fn line_index_counts_characters() {
        let index = LineIndex::new("f", "ab\nçd\n");
        assert_eq!(
            index.pos(0),
            Pos {
                line: 1,
                column: 1,
                byte: 0
            }
        );
        assert_eq!(
            index.pos(3),
            Pos {
                line: 2,
                column: 1,
                byte: 3
            }
        );
        // `ç` is two bytes but one column.
        assert_eq!(
            index.pos(5),
            Pos {
                line: 2,
                column: 2,
                byte: 5
            }
        );
    }
}
