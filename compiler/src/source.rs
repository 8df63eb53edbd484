//! Source files and positions.
//!
//! Every diagnostic points into a [`SourceFile`]. Positions are kept as byte
//! offsets (what miette wants) and converted to 1-based line and column (in
//! characters, as editors count) only for display.

use std::sync::{Arc, OnceLock};

/// One input: a file on disk or standard input, with its whole text.
#[derive(Debug, Clone)]
pub struct SourceFile {
    name: Arc<str>,
    text: Arc<str>,
    /// Byte offset of the start of each line; `line_starts[0] == 0`.
    line_starts: Arc<[usize]>,
    /// The text as it may be shown on a terminal (see [`Self::printable_text`]).
    printable: Arc<OnceLock<Arc<str>>>,
}

impl SourceFile {
    pub fn new(name: impl Into<Arc<str>>, text: impl Into<Arc<str>>) -> Self {
        let text: Arc<str> = text.into();
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self {
            name: name.into(),
            text,
            line_starts,
            printable: Arc::default(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn shared_text(&self) -> Arc<str> {
        self.text.clone()
    }

    /// The text with control characters other than tab, newline and
    /// carriage return replaced by `?` (one `?` per byte, so every offset
    /// stays valid): quoting hostile input must not send escape sequences to
    /// a terminal.
    pub fn printable_text(&self) -> Arc<str> {
        self.printable
            .get_or_init(|| {
                let quiet = |c: char| !c.is_control() || matches!(c, '\t' | '\n' | '\r');
                if self.text.chars().all(quiet) {
                    return self.text.clone();
                }
                self.text
                    .chars()
                    .map(|c| {
                        if quiet(c) {
                            c.to_string()
                        } else {
                            "?".repeat(c.len_utf8())
                        }
                    })
                    .collect::<String>()
                    .into()
            })
            .clone()
    }

    pub fn shared_name(&self) -> Arc<str> {
        self.name.clone()
    }

    /// The length in bytes of the longest line that `span` touches.
    pub fn longest_line(&self, span: Span) -> usize {
        let first = self.line_starts.partition_point(|&s| s <= span.offset) - 1;
        let end = span.offset + span.len;
        let mut longest = 0;
        for (i, &start) in self.line_starts.iter().enumerate().skip(first) {
            if start > end {
                break;
            }
            let next = self
                .line_starts
                .get(i + 1)
                .map_or(self.text.len(), |&n| n - 1);
            longest = longest.max(next.saturating_sub(start));
        }
        longest
    }

    /// Byte offset of a 1-based line and a 0-based column counted in characters.
    /// Positions past the end of a line or of the file are clamped.
    pub fn offset(&self, line: usize, col_chars: usize) -> usize {
        let Some(&start) = self.line_starts.get(line.saturating_sub(1)) else {
            return self.text.len();
        };
        let rest = &self.text[start..];
        let line_text = rest.split('\n').next().unwrap_or("");
        let within = line_text
            .char_indices()
            .nth(col_chars)
            .map_or(line_text.len(), |(i, _)| i);
        start + within
    }

    /// 1-based line and 1-based column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&s| s <= offset);
        let start = self.line_starts[line - 1];
        let col = self.text[start..offset].chars().count() + 1;
        (line, col)
    }
}

/// A byte range in a [`SourceFile`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub offset: usize,
    pub len: usize,
}

impl Span {
    pub fn new(offset: usize, len: usize) -> Self {
        Self { offset, len }
    }
}

/// Where something was defined: a file and a span in it.
#[derive(Debug, Clone)]
pub struct Location {
    pub file: SourceFile,
    pub span: Span,
}

impl Location {
    /// `file:line:col`, 1-based.
    pub fn display(&self) -> String {
        let (line, col) = self.file.line_col(self.span.offset);
        format!("{}:{line}:{col}", self.file.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_not_shown() {
        let f = SourceFile::new("t.yaml", "a: \u{1b}[2J\tb\u{9b}c\r\n");
        assert_eq!(&*f.printable_text(), "a: ?[2J\tb??c\r\n");
        assert_eq!(f.printable_text().len(), f.text().len());
        let clean = SourceFile::new("t.yaml", "a: é\n");
        assert!(Arc::ptr_eq(&clean.printable_text(), &clean.shared_text()));
    }

    #[test]
    fn the_longest_line_a_span_touches() {
        let f = SourceFile::new("t.yaml", "ab\nabcdef\nabc\n");
        assert_eq!(f.longest_line(Span::new(0, 1)), 2);
        assert_eq!(f.longest_line(Span::new(1, 3)), 6);
        assert_eq!(f.longest_line(Span::new(10, 0)), 3);
        assert_eq!(f.longest_line(Span::new(14, 0)), 0);
    }

    #[test]
    fn offsets_count_characters_not_bytes() {
        let f = SourceFile::new("t.yaml", "a: é\nbé: x\n");
        // line 2, column 3 (0-based) is the ':' after "bé"
        let off = f.offset(2, 2);
        assert_eq!(&f.text()[off..off + 1], ":");
        assert_eq!(f.line_col(off), (2, 3));
    }

    #[test]
    fn clamps_out_of_range_positions() {
        let f = SourceFile::new("t.yaml", "a: 1\n");
        assert_eq!(f.offset(9, 0), f.text().len());
        assert_eq!(f.offset(1, 99), 4);
    }
}
