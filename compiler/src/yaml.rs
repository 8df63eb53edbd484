//! All YAML handling lives here, so that the choice of crates can change in one
//! place.
//!
//! Two parsers read the same text:
//! - `saphyr`'s marked tree gives the structure of each document with source
//!   positions; it locates semantic errors by path (`/spec/ingress/0/from/1`)
//!   and finds the objects of a `kind: List`;
//! - `serde-saphyr` deserializes each object into typed resources
//!   (k8s-openapi or our own serde types); it reports line and column for type
//!   errors and rejects duplicate keys.
//!
//! A file is split into documents at `---` lines before either parser sees it.
//! YAML forbids a document-marker line inside a document's content, so the split
//! is exact, and a syntax error in one document leaves the others readable.
//! Each document is parsed on its own text; positions are shifted back into the
//! whole file, so every diagnostic points at the right line of the right file.

use saphyr::{MarkedYaml, Scalar, YamlData};
use saphyr_parser::{Event, SpannedEventReceiver};
use serde::de::DeserializeOwned;

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
    text: &'f str,
    root: MarkedYaml<'f>,
}

/// One object of a document: the document's root, or an item of a `kind: List`.
#[derive(Debug, Clone, Copy)]
pub struct Object<'d> {
    doc: &'d Document<'d>,
    node: &'d MarkedYaml<'d>,
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
            if matches!(root.data, YamlData::Value(Scalar::Null)) {
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
fn parse(text: &str) -> Result<Vec<MarkedYaml<'_>>, (usize, usize, String)> {
    // Every character YAML forbids starts with a byte below 0x20 (C0, but
    // tab, LF and CR), 0x7F, 0xC2 (C1) or 0xEF (U+FFFE, U+FFFF): a scan of
    // the bytes decides, and characters are decoded only past such a byte.
    let suspect = |b: &u8| matches!(b, 0..=0x08 | 0x0b | 0x0c | 0x0e..=0x1f | 0x7f | 0xc2 | 0xef);
    if text.as_bytes().iter().any(suspect)
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
    let at = |m: &saphyr::Marker| (m.line(), m.col());
    let mut parser = saphyr_parser::Parser::new_from_str(text);
    let mut loader = saphyr::YamlLoader::<MarkedYaml>::default();
    loader.alias_limit(ALIAS_LIMIT);
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

/// `(lines before, text)` for each document of a multi-document stream.
pub fn split_documents(text: &str) -> Vec<(usize, &str)> {
    let mut docs = Vec::new();
    let mut start = 0;
    let mut start_line = 0;
    let mut pos = 0;
    for (line_no, line) in text.split_inclusive('\n').enumerate() {
        let is_marker =
            line.starts_with("---") && line[3..].chars().next().is_none_or(|c| c.is_whitespace());
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
            && let YamlData::Sequence(seq) = &items.data
        {
            return seq.iter().map(|node| Object { doc: self, node }).collect();
        }
        vec![root]
    }

    /// The items of a document whose root is a sequence (a probe file).
    pub fn sequence_items(&self) -> Option<Vec<Object<'_>>> {
        match &self.root.data {
            YamlData::Sequence(seq) => {
                Some(seq.iter().map(|node| Object { doc: self, node }).collect())
            }
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

    fn abs_offset(&self, m: saphyr::Marker) -> usize {
        self.file.offset(m.line() + self.line_offset, m.col())
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

    fn span_of(&self, node: &MarkedYaml) -> Span {
        let start = self.doc.abs_offset(node.span.start);
        let end = self.doc.abs_offset(node.span.end).max(start);
        // Point at one line at most: block nodes end where the next one starts.
        let text = &self.doc.file.text()[start..end];
        let len = text.find('\n').unwrap_or(text.len());
        Span::new(start, len.max(if end > start { 1 } else { 0 }))
    }

    /// The node at `path`, if all of it exists.
    pub fn node_at(&self, path: &[Seg]) -> Option<&'d MarkedYaml<'d>> {
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
            YamlData::Sequence(seq) => Some(seq.len()),
            _ => None,
        }
    }

    /// The string keys of the mapping at `path` (empty if it is not one).
    pub fn keys_at(&self, path: &[Seg]) -> Vec<String> {
        match self.node_at(path).map(|n| &n.data) {
            Some(YamlData::Mapping(map)) => map
                .iter()
                .filter_map(|(k, _)| k.data.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The string scalar at `path`.
    pub fn str_at(&self, path: &[Seg]) -> Option<&'d str> {
        match &self.node_at(path)?.data {
            YamlData::Value(Scalar::String(s)) => Some(s.as_ref()),
            _ => None,
        }
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
            && let YamlData::Mapping(map) = &parent_node.data
        {
            let want = seg_key(path.last().expect("split_last returned Some"));
            for (k, _) in map.iter() {
                if k.data.as_str() == Some(want) {
                    return self.span_of(k);
                }
            }
        }
        self.locate(path)
    }

    /// Deserialize the object into a typed resource with serde-saphyr.
    pub fn typed<T: DeserializeOwned>(&self) -> Result<T, Diagnostic> {
        let (view, view_line_offset) = self.view();
        serde_saphyr::from_str_with_options::<T>(&view, serde_saphyr::Options::default()).map_err(
            |e| {
                let missing = plain_message(&e).starts_with("missing field");
                let (span, message) = match e.location() {
                    // A missing field is a fault of the whole mapping: point at it.
                    _ if missing => (self.span(), plain_message(&e)),
                    Some(loc) if loc.line() > 0 => {
                        let line = loc.line() as usize + view_line_offset;
                        let col = (loc.column() as usize).saturating_sub(1);
                        let offset = self.doc.file.offset(line, col);
                        let len = loc.span().byte_len().unwrap_or(1).max(1) as usize;
                        let len = len.min(self.doc.file.text().len() - offset);
                        (Span::new(offset, len), plain_message(&e))
                    }
                    _ => (self.span(), plain_message(&e)),
                };
                let help = if message.contains("duplicate") {
                    "remove the repeated key: YAML keys must be unique within a mapping"
                } else if message.contains("missing field") {
                    "add the required field"
                } else {
                    "give the field the type the Kubernetes API expects"
                };
                Diagnostic::new(Code::WrongType, message)
                    .with_help(help)
                    .at(self.doc.file, span)
            },
        )
    }

    /// The object's text alone, with every column kept where it was: the lines
    /// before it are left out (their count is returned) and what precedes the
    /// object on its first line (`- ` of a list item) becomes spaces.
    fn view(&self) -> (String, usize) {
        let text = self.doc.text;
        if std::ptr::eq(self.node, &self.doc.root) {
            return (text.to_owned(), self.doc.line_offset);
        }
        let start = self.node.span.start;
        let file = self.doc.file;
        let abs_line = start.line() + self.doc.line_offset;
        let line_start = file.offset(abs_line, 0);
        let node_start = file.offset(abs_line, start.col());
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

fn seg_key(seg: &Seg) -> &str {
    match seg {
        Seg::Key(k) => k,
        Seg::Owned(k) => k,
        Seg::Index(_) => "",
    }
}

/// Follow `path` from `node` as far as it exists; returns the node reached and
/// how many segments were followed.
fn walk<'a, 'n>(mut node: &'a MarkedYaml<'n>, path: &[Seg]) -> (&'a MarkedYaml<'n>, usize) {
    for (depth, seg) in path.iter().enumerate() {
        let next = match (&node.data, seg) {
            (YamlData::Mapping(map), Seg::Key(_) | Seg::Owned(_)) => map
                .iter()
                .find(|(k, _)| k.data.as_str() == Some(seg_key(seg)))
                .map(|(_, v)| v),
            (YamlData::Sequence(seq), Seg::Index(i)) => seq.get(*i),
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
