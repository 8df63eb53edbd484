//! All YAML handling lives here, so that the choice of crates can change in one
//! place.
//!
//! Each document is parsed once, by `saphyr-parser`, into a tree ([`tree`])
//! that keeps every node's source position and every scalar as written
//! (text, quoting, tag):
//! - semantic errors are located by path (`/spec/ingress/0/from/1`), and the
//!   objects of a `kind: List` are found, in that tree;
//! - typed resources (k8s-openapi or our own serde types) are deserialized
//!   from the same tree ([`de`]), each type error located at its node.
//!
//! A file is split into documents at `---` lines before the parser sees it.
//! YAML forbids a document-marker line inside a document's content, so the split
//! is exact, and a syntax error in one document leaves the others readable.
//! Each document is parsed on its own text; positions are shifted back into the
//! whole file, so every diagnostic points at the right line of the right file.

mod de;
mod tree;

use saphyr_parser::{Event, SpannedEventReceiver};
use serde::de::DeserializeOwned;

use self::de::{Resolved, Text};
use self::tree::{Data, Marked};

use crate::diag::{Code, Diagnostic};
use crate::source::{SourceFile, Span};

/// Limits that keep hostile input bounded: nodes an alias may expand to, and
/// levels of nesting (the deepest Kubernetes objects, CRD schemas included,
/// stay well under it).
const ALIAS_LIMIT: usize = 10_000;
const DEPTH_LIMIT: usize = 128;

/// A document of a file, parsed into a marked tree.
#[derive(Debug)]
pub struct Document<'f> {
    file: &'f SourceFile,
    /// Number of lines of the file before this document's text.
    line_offset: usize,
    /// The document's text (the tests re-read objects from it with serde-saphyr).
    #[cfg_attr(not(test), allow(dead_code))]
    text: &'f str,
    root: Marked<'f>,
}

/// One object of a document: the document's root, or an item of a `kind: List`.
#[derive(Debug, Clone, Copy)]
pub struct Object<'d> {
    doc: &'d Document<'d>,
    node: &'d Marked<'d>,
}

/// One step of a path into a YAML tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(&'static str),
    /// A key known only at run time (a label key, say).
    Owned(String),
    Index(usize),
}

impl From<&'static str> for Seg {
    fn from(s: &'static str) -> Self {
        Seg::Key(s)
    }
}

impl From<usize> for Seg {
    fn from(i: usize) -> Self {
        Seg::Index(i)
    }
}

/// Split a file into documents and parse each. Syntax errors become
/// diagnostics; the documents that parse are returned.
pub fn documents<'f>(file: &'f SourceFile, diags: &mut Vec<Diagnostic>) -> Vec<Document<'f>> {
    let mut out = Vec::new();
    for (line_offset, text) in split_documents(file.text()) {
        let roots = match parse(text) {
            Ok(roots) => roots,
            Err((line, col, info)) => {
                let offset = file.offset(line + line_offset, col);
                diags.push(
                    Diagnostic::new(Code::YamlSyntax, format!("invalid YAML: {info}"))
                        .with_help(
                            "fix the YAML syntax; the other documents of the file are still read",
                        )
                        .at(file, Span::new(offset, 0)),
                );
                continue;
            }
        };
        for root in roots {
            if Text::of(&root).is_some_and(|t| t.resolve() == Resolved::Null) {
                continue;
            }
            out.push(Document {
                file,
                line_offset,
                text,
                root,
            });
        }
    }
    out
}

/// Parse one document's text into marked trees.
///
/// The events are fed to the loader one by one rather than through
/// `Parser::load`, which recurses once per level of nesting: a file of a few
/// thousand nested block sequences would overflow the stack. Here nesting
/// deeper than [`DEPTH_LIMIT`] is an error, as are aliases expanding beyond
/// [`ALIAS_LIMIT`] nodes and tags outside YAML's core schema.
/// Errors carry the 1-based line and 0-based column in the document.
fn parse(text: &str) -> Result<Vec<Marked<'_>>, (usize, usize, String)> {
    // Every character YAML forbids starts with a byte below 0x20 (C0, but
    // tab, LF and CR), 0x7F, 0xC2 (C1) or 0xEF (U+FFFE, U+FFFF): a scan of
    // the bytes decides, and characters are decoded only past such a byte.
    let suspect = |b: u8| matches!(b, 0..=0x08 | 0x0b | 0x0c | 0x0e..=0x1f | 0x7f | 0xc2 | 0xef);
    // Folded a block at a time with no branch per byte, so that it vectorizes.
    let any_suspect = |block: &[u8]| block.iter().fold(false, |seen, &b| seen | suspect(b));
    if text.as_bytes().chunks(4096).any(any_suspect)
        && let Some((at, c)) = text.char_indices().find(|&(_, c)| !printable(c))
    {
        let before = &text[..at];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().unwrap_or("").chars().count();
        return Err((
            line,
            col,
            format!(
                "the control character U+{:04X} is not allowed; YAML text is printable (escape it in a double-quoted string: \"\\x{:02x}\")",
                c as u32, c as u32
            ),
        ));
    }
    let at = |m: &saphyr_parser::Marker| (m.line(), m.col());
    let mut parser = saphyr_parser::Parser::new_from_str(text);
    // Scalars stay as written; `de` reads each the way its field asks.
    let mut loader = tree::Loader::new(ALIAS_LIMIT);
    let mut depth = 0usize;
    while let Some(next) = parser.next_event() {
        let (event, span) = next.map_err(|e| {
            let (line, col) = at(e.marker());
            (line, col, e.info().to_owned())
        })?;
        let tag = match &event {
            Event::SequenceStart(_, tag) | Event::MappingStart(_, tag) => {
                depth += 1;
                if depth > DEPTH_LIMIT {
                    let (line, col) = at(&span.start);
                    return Err((
                        line,
                        col,
                        format!("nesting deeper than {DEPTH_LIMIT} levels"),
                    ));
                }
                tag
            }
            Event::SequenceEnd | Event::MappingEnd => {
                depth = depth.saturating_sub(1);
                &None
            }
            Event::Scalar(_, _, _, tag) => tag,
            _ => &None,
        };
        if let Some(tag) = tag
            && !(tag.is_yaml_core_schema() && CORE_TAGS.contains(&tag.suffix.as_str()))
        {
            let (line, col) = at(&span.start);
            return Err((
                line,
                col,
                format!(
                    "unsupported tag `{}`; Kubernetes manifests hold plain maps, lists and scalars",
                    display_tag(tag)
                ),
            ));
        }
        loader.on_event(event, span);
        if let Some(e) = loader.error() {
            let (line, col) = at(e.marker());
            return Err((line, col, e.info().to_owned()));
        }
    }
    Ok(loader.into_documents())
}

/// YAML's printable characters (`c-printable`): no C0 or C1 control other
/// than tab, line feed, carriage return and next line, no U+FFFE or U+FFFF.
fn printable(c: char) -> bool {
    match c {
        '\t' | '\n' | '\r' | '\u{85}' => true,
        '\u{fffe}' | '\u{ffff}' => false,
        c => !c.is_control(),
    }
}

/// The tags of YAML's core schema that keep a value plain (`!!str`, ...).
const CORE_TAGS: [&str; 7] = ["str", "int", "float", "bool", "null", "map", "seq"];

/// A tag as written: `!!binary` rather than its expanded form.
fn display_tag(tag: &saphyr_parser::Tag) -> String {
    if tag.is_yaml_core_schema() {
        format!("!!{}", tag.suffix)
    } else {
        format!("{}{}", tag.handle, tag.suffix)
    }
}

/// `(lines before, text)` for each document of a multi-document stream: a
/// document begins at each line that starts with `---` followed by
/// whitespace or the end of the text (a marker on the first line opens the
/// first document). Only the `---`s are visited, and the lines between two
/// markers are counted with a byte count.
pub fn split_documents(text: &str) -> Vec<(usize, &str)> {
    let newlines = |s: &str| s.bytes().filter(|&b| b == b'\n').count();
    let mut docs = Vec::new();
    let (mut start, mut start_line) = (0, 0);
    // Lines before `counted`.
    let (mut counted, mut lines) = (0, 0);
    for (at, _) in text.match_indices("---") {
        let line_start = at == 0 || text.as_bytes()[at - 1] == b'\n';
        if !line_start
            || !text[at + 3..]
                .chars()
                .next()
                .is_none_or(char::is_whitespace)
        {
            continue;
        }
        lines += newlines(&text[counted..at]);
        counted = at;
        if at > start {
            docs.push((start_line, &text[start..at]));
            start = at;
            start_line = lines;
        }
    }
    if text.len() > start || docs.is_empty() {
        docs.push((start_line, &text[start..]));
    }
    docs
}

impl<'f> Document<'f> {
    pub fn file(&self) -> &'f SourceFile {
        self.file
    }

    /// The objects of this document: the items of a `kind: List`, or the root.
    pub fn objects(&self) -> Vec<Object<'_>> {
        let root = Object {
            doc: self,
            node: &self.root,
        };
        if root.str_at(&["kind".into()]) == Some("List")
            && let Some(items) = root.node_at(&["items".into()])
            && let Data::Seq(seq) = &items.data
        {
            return seq.iter().map(|node| Object { doc: self, node }).collect();
        }
        vec![root]
    }

    /// The items of a document whose root is a sequence (a probe file).
    pub fn sequence_items(&self) -> Option<Vec<Object<'_>>> {
        match &self.root.data {
            Data::Seq(seq) => Some(seq.iter().map(|node| Object { doc: self, node }).collect()),
            _ => None,
        }
    }

    /// The document's root as one object.
    pub fn root(&self) -> Object<'_> {
        Object {
            doc: self,
            node: &self.root,
        }
    }

    fn abs_offset(&self, m: tree::Pos) -> usize {
        self.file
            .offset(m.line as usize + self.line_offset, m.col as usize)
    }
}

impl<'d> Object<'d> {
    pub fn file(&self) -> &'d SourceFile {
        self.doc.file
    }

    /// The span of the whole object: its first line (enough to point at it).
    pub fn span(&self) -> Span {
        self.span_of(self.node)
    }

    fn span_of(&self, node: &Marked) -> Span {
        self.span_of_marks(node.span)
    }

    fn span_of_marks(&self, marks: tree::Marks) -> Span {
        let start = self.doc.abs_offset(marks.start);
        let end = self.doc.abs_offset(marks.end).max(start);
        // Point at one line at most: block nodes end where the next one starts.
        let text = &self.doc.file.text()[start..end];
        let len = text.find('\n').unwrap_or(text.len());
        Span::new(start, len.max(if end > start { 1 } else { 0 }))
    }

    /// The node at `path`, if all of it exists.
    pub(crate) fn node_at(&self, path: &[Seg]) -> Option<&'d Marked<'d>> {
        let (node, depth) = walk(self.node, path);
        (depth == path.len()).then_some(node)
    }

    /// The node at `path` as an object of its own (its paths start there).
    pub fn child(&self, path: &[Seg]) -> Option<Object<'d>> {
        self.node_at(path).map(|node| Object {
            doc: self.doc,
            node,
        })
    }

    /// The length of the sequence at `path`; `None` if it is not one.
    pub fn sequence_len(&self, path: &[Seg]) -> Option<usize> {
        match &self.node_at(path)?.data {
            Data::Seq(seq) => Some(seq.len()),
            _ => None,
        }
    }

    /// The string keys of the mapping at `path` (empty if it is not one).
    pub fn keys_at(&self, path: &[Seg]) -> Vec<String> {
        match self.node_at(path).map(|n| &n.data) {
            Some(Data::Map(map)) => map
                .iter()
                .filter_map(|(k, _)| key_text(k).map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The string scalar at `path`.
    pub fn str_at(&self, path: &[Seg]) -> Option<&'d str> {
        Text::of(self.node_at(path)?)?.core_str()
    }

    /// The span of the node at `path`, or of its deepest existing ancestor.
    pub fn locate(&self, path: &[Seg]) -> Span {
        let (node, _) = walk(self.node, path);
        self.span_of(node)
    }

    /// The span of the key of the last path segment (for "missing"/"duplicate"
    /// style messages that are about a field name), or of the node itself.
    pub fn locate_key(&self, path: &[Seg]) -> Span {
        if let Some((Seg::Key(_) | Seg::Owned(_), parent)) = path.split_last()
            && let (parent_node, depth) = walk(self.node, parent)
            && depth == parent.len()
            && let Data::Map(map) = &parent_node.data
        {
            let want = seg_key(path.last().expect("split_last returned Some"));
            for (k, _) in map.iter() {
                if key_text(k) == Some(want) {
                    return self.span_of(k);
                }
            }
        }
        self.locate(path)
    }

    /// Deserialize the object into a typed resource.
    pub fn typed<T: DeserializeOwned>(&self) -> Result<T, Diagnostic> {
        de::from_node::<T>(self.node).map_err(|e| {
            let span = match e.at {
                Some(at) => self.span_of_marks(at),
                None => self.span(),
            };
            let help = if e.message.contains("duplicate") {
                "remove the repeated key: YAML keys must be unique within a mapping"
            } else if e.message.contains("missing field") {
                "add the required field"
            } else {
                "give the field the type the Kubernetes API expects"
            };
            Diagnostic::new(Code::WrongType, e.message)
                .with_help(help)
                .at(self.doc.file, span)
        })
    }

    /// The object deserialized by `serde-saphyr` from its own text: the
    /// reference the tree deserializer is held to in tests.
    #[cfg(test)]
    fn typed_by_serde_saphyr<T: DeserializeOwned>(&self) -> Result<T, String> {
        let (view, _) = self.view();
        serde_saphyr::from_str_with_options::<T>(&view, serde_saphyr::Options::default())
            .map_err(|e| plain_message(&e))
    }

    /// The object's text alone, with every column kept where it was: the lines
    /// before it are left out (their count is returned) and what precedes the
    /// object on its first line (`- ` of a list item) becomes spaces.
    #[cfg(test)]
    fn view(&self) -> (String, usize) {
        let text = self.doc.text;
        if std::ptr::eq(self.node, &self.doc.root) {
            return (text.to_owned(), self.doc.line_offset);
        }
        let start = self.node.span.start;
        let file = self.doc.file;
        let abs_line = start.line as usize + self.doc.line_offset;
        let line_start = file.offset(abs_line, 0);
        let node_start = file.offset(abs_line, start.col as usize);
        let mut end = self.doc.abs_offset(self.node.span.end).max(node_start);
        // saphyr ends a flow collection at its last scalar: take the closing
        // bracket too.
        if let Some(close) = flow_end(&file.text()[node_start..]) {
            end = end.max(node_start + close);
        }
        let mut view = String::with_capacity(end - line_start);
        view.extend(file.text()[line_start..node_start].chars().map(|_| ' '));
        view.push_str(&file.text()[node_start..end]);
        (view, abs_line - 1)
    }
}

/// The length of a flow collection (`{...}` or `[...]`) at the start of
/// `text`, brackets and quotes balanced; `None` if `text` starts otherwise.
#[cfg(test)]
fn flow_end(text: &str) -> Option<usize> {
    if !text.starts_with(['{', '[']) {
        return None;
    }
    let mut depth = 0usize;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '{' | '[' => depth += 1,
            '}' | ']' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            '"' => {
                while let Some((_, c)) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        _ => {}
                    }
                }
            }
            '\'' => {
                while let Some((_, c)) = chars.next() {
                    if c == '\'' {
                        if chars.peek().map(|&(_, c)| c) == Some('\'') {
                            chars.next();
                        } else {
                            break;
                        }
                    }
                }
            }
            _ => {}
        }
    }
    None
}

/// The text of a scalar key, however it is quoted.
fn key_text<'a>(k: &'a Marked<'a>) -> Option<&'a str> {
    Text::of(k).map(|t| t.text)
}

fn seg_key(seg: &Seg) -> &str {
    match seg {
        Seg::Key(k) => k,
        Seg::Owned(k) => k,
        Seg::Index(_) => "",
    }
}

/// Follow `path` from `node` as far as it exists; returns the node reached and
/// how many segments were followed.
fn walk<'a, 'n>(mut node: &'a Marked<'n>, path: &[Seg]) -> (&'a Marked<'n>, usize) {
    for (depth, seg) in path.iter().enumerate() {
        let next = match (&node.data, seg) {
            (Data::Map(map), Seg::Key(_) | Seg::Owned(_)) => map
                .iter()
                .find(|(k, _)| key_text(k) == Some(seg_key(seg)))
                .map(|(_, v)| v),
            (Data::Seq(seq), Seg::Index(i)) => seq.get(*i),
            _ => None,
        };
        match next {
            Some(n) => node = n,
            None => return (node, depth),
        }
    }
    (node, path.len())
}

/// serde-saphyr's message without its own location prefix and snippet.
#[cfg(test)]
fn plain_message(e: &serde_saphyr::Error) -> String {
    let text = e.without_snippet().to_string();
    let first = text.lines().next().unwrap_or("").trim();
    let first = first.strip_prefix("error: ").unwrap_or(first);
    // "line 14 column 16: invalid i32" -> "invalid i32"
    let stripped = match first.split_once(": ") {
        Some((head, rest)) if head.starts_with("line ") && head.contains(" column ") => rest,
        _ => first,
    };
    // " at line 3, column 5" suffixes
    let stripped = match stripped.rfind(" at line ") {
        Some(i) => &stripped[..i],
        None => stripped,
    };
    stripped.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The split as the definition reads, line by line.
    fn split_by_lines(text: &str) -> Vec<(usize, &str)> {
        let mut docs = Vec::new();
        let (mut start, mut start_line, mut pos) = (0, 0, 0);
        for (line_no, line) in text.split_inclusive('\n').enumerate() {
            let is_marker = line.starts_with("---")
                && line[3..].chars().next().is_none_or(|c| c.is_whitespace());
            if is_marker && pos > start {
                docs.push((start_line, &text[start..pos]));
                start = pos;
                start_line = line_no;
            }
            pos += line.len();
        }
        if pos > start || docs.is_empty() {
            docs.push((start_line, &text[start..]));
        }
        docs
    }

    proptest::proptest! {
        #[test]
        fn the_split_is_the_line_by_line_split(
            parts in proptest::collection::vec(
                proptest::sample::select(vec![
                    "---", "----", "-", "--", "\n", "\r\n", " ", "\t", "a", "x: 1", "\u{a0}", "é",
                ]),
                0..40,
            )
        ) {
            let text = parts.concat();
            proptest::prop_assert_eq!(split_documents(&text), split_by_lines(&text));
        }
    }

    #[test]
    fn splits_at_document_markers_only() {
        let docs = split_documents("a: 1\n---\nb: |\n  ---x\n--- \nc: 3\n");
        assert_eq!(docs.len(), 3);
        assert_eq!(docs[0], (0, "a: 1\n"));
        assert_eq!(docs[1].0, 1);
        assert_eq!(docs[2], (4, "--- \nc: 3\n"));
    }

    #[test]
    fn a_syntax_error_spares_other_documents() {
        let f = SourceFile::new("t.yaml", "a: 1\n---\nb: [1,\n---\nc: 3\n");
        let mut diags = Vec::new();
        let docs = documents(&f, &mut diags);
        assert_eq!(docs.len(), 2);
        assert_eq!(diags.len(), 1);
        assert_eq!(diags[0].line_col().unwrap().0, 4);
    }

    #[test]
    fn locates_paths_in_list_items() {
        let f = SourceFile::new(
            "t.yaml",
            "kind: List\nitems:\n- kind: A\n  spec:\n    port: 5\n- kind: B\n",
        );
        let mut diags = Vec::new();
        let docs = documents(&f, &mut diags);
        let objs = docs[0].objects();
        assert_eq!(objs.len(), 2);
        let span = objs[0].locate(&["spec".into(), "port".into()]);
        assert_eq!(f.line_col(span.offset), (5, 11));
        assert_eq!(objs[1].str_at(&["kind".into()]), Some("B"));
    }

    #[test]
    fn flow_items_are_parsed_whole() {
        #[derive(serde::Deserialize, Debug, PartialEq)]
        struct P {
            from: String,
            port: u16,
        }
        let f = SourceFile::new(
            "p.yaml",
            "[{from: \"a]}\", port: 1}, {from: 'b''}', port: 2}]\n",
        );
        let mut diags = Vec::new();
        let docs = documents(&f, &mut diags);
        let items = docs[0].sequence_items().unwrap();
        let parsed: Vec<P> = items.iter().map(|o| o.typed().unwrap()).collect();
        assert_eq!(
            parsed[0],
            P {
                from: "a]}".into(),
                port: 1
            }
        );
        assert_eq!(
            parsed[1],
            P {
                from: "b'}".into(),
                port: 2
            }
        );
    }

    #[test]
    fn typed_errors_point_into_the_file() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct T {
            kind: String,
            spec: S,
        }
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct S {
            port: u16,
        }
        let f = SourceFile::new(
            "t.yaml",
            "x: 0\n---\nkind: List\nitems:\n- kind: A\n  spec:\n    port: nope\n",
        );
        let mut diags = Vec::new();
        let docs = documents(&f, &mut diags);
        let objs = docs[1].objects();
        let err = objs[0].typed::<T>().unwrap_err();
        assert_eq!(err.code, Code::WrongType);
        assert_eq!(err.line_col(), Some((7, 11)), "{err}");
    }

    fn errors(text: &str) -> Vec<String> {
        let f = SourceFile::new("t.yaml", text);
        let mut diags = Vec::new();
        documents(&f, &mut diags);
        diags
            .iter()
            .map(|d| format!("{}:{}", d.line_col().unwrap().0, d.message))
            .collect()
    }

    #[test]
    fn nesting_is_bounded_without_recursion() {
        // Block sequences nested far deeper than a thread's stack could
        // follow recursively.
        let deep: String = (0..20_000)
            .map(|i| format!("{}-\n", " ".repeat(i)))
            .collect();
        assert_eq!(
            errors(&deep),
            ["129:invalid YAML: nesting deeper than 128 levels"]
        );
        let flow = format!("a: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(errors(&flow).len(), 1);
        let fine: String = (0..DEPTH_LIMIT)
            .map(|i| format!("{}-\n", " ".repeat(i)))
            .collect();
        assert_eq!(errors(&fine), Vec::<String>::new());
    }

    #[test]
    fn control_characters_are_refused_where_they_stand() {
        assert_eq!(
            errors("a: 1\nb: \"x\u{1b}[2J\"\n"),
            [
                "2:invalid YAML: the control character U+001B is not allowed; YAML text is printable (escape it in a double-quoted string: \"\\x1b\")"
            ]
        );
        assert_eq!(errors("a: \"\\e[2J\"\nb: \"\u{85}\"\n").len(), 0);
    }

    #[test]
    fn tags_outside_the_core_schema_are_refused() {
        assert_eq!(
            errors("a: 1\nb: !custom x\n"),
            [
                "2:invalid YAML: unsupported tag `!custom`; Kubernetes manifests hold plain maps, lists and scalars"
            ]
        );
        assert_eq!(errors("a: !!binary aGk=\n").len(), 1);
        assert_eq!(errors("a: !!python/object:os.system [ls]\n").len(), 1);
        assert_eq!(errors("a: !!str 5\nb: !!map {c: !!int 1}\n").len(), 0);
    }

    /// Deserialize `obj` as `T` both from the tree and with serde-saphyr
    /// from its text; the two must agree (both values equal, or both errors).
    fn agree<T: DeserializeOwned + std::fmt::Debug>(obj: &Object<'_>, what: &str) {
        let tree = obj.typed::<T>().map_err(|d| d.message);
        let reference = obj.typed_by_serde_saphyr::<T>();
        match (&tree, &reference) {
            (Ok(a), Ok(b)) => assert_eq!(format!("{a:?}"), format!("{b:?}"), "{what}"),
            (Err(_), Err(_)) => {}
            _ => panic!("{what}: the tree gives {tree:?}, serde-saphyr {reference:?}"),
        }
    }

    fn agree_on_object(obj: &Object<'_>, what: &str) -> bool {
        use k8s_openapi::api::networking::v1 as networking;
        use k8s_openapi::api::{apps::v1 as apps, batch::v1 as batch, core::v1 as core};
        let (Some(api), Some(kind)) = (
            obj.str_at(&["apiVersion".into()]),
            obj.str_at(&["kind".into()]),
        ) else {
            return false;
        };
        match (api, kind) {
            ("v1", "Namespace") => agree::<core::Namespace>(obj, what),
            ("v1", "Pod") => agree::<core::Pod>(obj, what),
            ("v1", "ServiceAccount") => agree::<core::ServiceAccount>(obj, what),
            ("v1", "Service") => agree::<core::Service>(obj, what),
            ("v1", "ConfigMap") => agree::<core::ConfigMap>(obj, what),
            ("v1", "Node") => agree::<core::Node>(obj, what),
            ("apps/v1", "Deployment") => agree::<apps::Deployment>(obj, what),
            ("apps/v1", "StatefulSet") => agree::<apps::StatefulSet>(obj, what),
            ("apps/v1", "DaemonSet") => agree::<apps::DaemonSet>(obj, what),
            ("apps/v1", "ReplicaSet") => agree::<apps::ReplicaSet>(obj, what),
            ("batch/v1", "Job") => agree::<batch::Job>(obj, what),
            ("batch/v1", "CronJob") => agree::<batch::CronJob>(obj, what),
            ("networking.k8s.io/v1", "NetworkPolicy") => {
                agree::<networking::NetworkPolicy>(obj, what)
            }
            (_, "AuthorizationPolicy") => agree::<crate::istio::AuthorizationPolicy>(obj, what),
            (_, "PeerAuthentication") => agree::<crate::istio::PeerAuthentication>(obj, what),
            (_, "ClusterNetworkPolicy") => agree::<crate::admin::ClusterNetworkPolicy>(obj, what),
            (_, "AdminNetworkPolicy") => agree::<crate::admin::AdminNetworkPolicy>(obj, what),
            (_, "BaselineAdminNetworkPolicy") => {
                agree::<crate::admin::BaselineAdminNetworkPolicy>(obj, what)
            }
            _ => return false,
        }
        true
    }

    #[test]
    fn the_tree_reads_every_shipped_object_as_serde_saphyr_does() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut stack = vec![
            root.join("testdata"),
            root.join("examples"),
            root.join("deploy"),
        ];
        let mut compared = 0;
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                if !matches!(
                    path.extension().and_then(|e| e.to_str()),
                    Some("yaml" | "yml")
                ) {
                    continue;
                }
                let Ok(text) = std::fs::read_to_string(&path) else {
                    continue;
                };
                let f = SourceFile::new(path.display().to_string(), text);
                let mut diags = Vec::new();
                for doc in documents(&f, &mut diags) {
                    for obj in doc.objects() {
                        let what =
                            format!("{}:{}", path.display(), f.line_col(obj.span().offset).0);
                        compared += usize::from(agree_on_object(&obj, &what));
                    }
                }
            }
        }
        assert!(compared > 500, "only {compared} objects compared");
    }

    #[test]
    fn scalars_read_as_serde_saphyr_reads_them() {
        use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
        use std::collections::BTreeMap;
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct W<T> {
            v: T,
        }
        const SCALARS: &[&str] = &[
            "80",
            "\"80\"",
            "'80'",
            "0x50",
            "0X1f",
            "0o17",
            "0b101",
            "8_0",
            "1_000",
            "_1",
            "1__0",
            "0x",
            "0123",
            "-0123",
            "00",
            "0",
            "-0",
            "+5",
            "-5",
            "2147483648",
            "-2147483649",
            "65535",
            "65536",
            "99999999999999999999999",
            "-99999999999999999999",
            "1.5",
            "-1.5",
            "1.",
            ".5",
            "1e3",
            "1E-3",
            ".inf",
            "-.Inf",
            ".NaN",
            "inf",
            "nan",
            "yes",
            "No",
            "ON",
            "off",
            "y",
            "N",
            "true",
            "True",
            "FALSE",
            "~",
            "null",
            "Null",
            "NULL",
            "",
            "\"\"",
            "''",
            "\"null\"",
            "abc",
            "a b",
            "\"a\\tb\"",
            "!!str 80",
            "!!str",
            "!!int 80",
            "!!int abc",
            "!!int 1.5",
            "!!float 1",
            "!!float x",
            "!!bool yes",
            "!!bool x",
            "!!null",
            "!!null x",
            "[]",
            "{}",
            "[1, a]",
            "{a: 1}",
            "{a: 1, \"a\": 2}",
            "|\n  80\n",
            ">-\n  x\n",
            "\" 80\"",
            "\"80 \"",
        ];
        fn check<T: DeserializeOwned + std::fmt::Debug>(text: &str) {
            let f = SourceFile::new("s.yaml", text);
            let mut diags = Vec::new();
            let docs = documents(&f, &mut diags);
            assert!(diags.is_empty(), "{text:?}: {diags:?}");
            let obj = docs[0].root();
            let tree = obj
                .typed::<W<T>>()
                .map(|w| format!("{w:?}"))
                .map_err(|d| d.message);
            let reference = obj
                .typed_by_serde_saphyr::<W<T>>()
                .map(|w| format!("{w:?}"));
            match (&tree, &reference) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{text:?} as {}", std::any::type_name::<T>()),
                (Err(_), Err(_)) => {}
                _ => panic!(
                    "{text:?} as {}: the tree gives {tree:?}, serde-saphyr {reference:?}",
                    std::any::type_name::<T>()
                ),
            }
        }
        for s in SCALARS {
            let text = format!("v: {s}\n");
            check::<i32>(&text);
            check::<u16>(&text);
            check::<i64>(&text);
            check::<u64>(&text);
            check::<f64>(&text);
            check::<bool>(&text);
            check::<String>(&text);
            check::<Option<String>>(&text);
            check::<Option<i32>>(&text);
            check::<IntOrString>(&text);
            check::<serde_json::Value>(&text);
            check::<Vec<String>>(&text);
            check::<BTreeMap<String, String>>(&text);
        }
    }

    #[test]
    fn merge_keys_merge_and_written_keys_win() {
        #[derive(serde::Deserialize, Debug, PartialEq)]
        struct P {
            a: u16,
            b: u16,
        }
        let f = SourceFile::new("m.yaml", "base: &b {a: 1, b: 2}\nv:\n  <<: *b\n  b: 3\n");
        let mut diags = Vec::new();
        let docs = documents(&f, &mut diags);
        #[derive(serde::Deserialize, Debug, PartialEq)]
        struct D {
            base: P,
            v: P,
        }
        let root = docs[0].root();
        let want = D {
            base: P { a: 1, b: 2 },
            v: P { a: 1, b: 3 },
        };
        assert_eq!(root.typed::<D>().unwrap(), want);
        assert_eq!(root.typed_by_serde_saphyr::<D>().unwrap(), want);
    }

    #[test]
    fn keys_that_differ_only_in_quoting_are_duplicates() {
        let f = SourceFile::new("d.yaml", "a: 1\n\"a\": 2\n");
        let mut diags = Vec::new();
        let docs = documents(&f, &mut diags);
        let err = docs[0]
            .root()
            .typed::<std::collections::BTreeMap<String, u16>>()
            .unwrap_err();
        assert_eq!(err.line_col(), Some((2, 1)), "{err}");
        assert!(err.message.contains("duplicate"), "{err}");
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            let refs = vec![format!("*a{}", i - 1); 10].join(", ");
            text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        let e = errors(&text);
        assert_eq!(e.len(), 1);
        assert!(e[0].contains("alias expansion"), "{e:?}");
    }
}
