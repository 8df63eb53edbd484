//! The marked tree: every node with its source span, every scalar as written,
//! mappings as lists of entries in the order they were written.
//!
//! Built from `saphyr-parser`'s events by [`Loader`], with the rules of
//! `saphyr`'s own loader (which this replaces: its tree keeps a hash map per
//! mapping, and building, hashing and dropping those cost about as much as
//! parsing the text):
//! - a key written twice in one mapping is an error at the second one (keys
//!   compare by text, quoting and tag; `a` and `"a"` are told apart here
//!   and caught when the mapping is typed);
//! - an alias is a copy of its anchor's node, and the copies of one load may
//!   hold at most `alias_limit` nodes in all (a "billion laughs" document
//!   fails instead of filling memory);
//! - a document with no node at all is [`Data::Empty`].
//!
//! Nesting is bounded by the caller, which sees every event first.
//!
//! A node is small (48 bytes on 64-bit targets: a position is a line and a
//! column, a tag the core-schema type it names), and each collection's children are gathered
//! on a stack shared by the whole load, then moved into a vector of their
//! exact number when the collection ends: no vector grows while a document
//! is read.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use saphyr_parser::{Event, ScalarStyle, ScanError, SpannedEventReceiver, Tag};

/// A position in a document's text: line (from 1) and column (from 0, in
/// characters), as saphyr-parser counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pos {
    pub line: u32,
    pub col: u32,
}

impl From<saphyr_parser::Marker> for Pos {
    fn from(m: saphyr_parser::Marker) -> Self {
        let narrow = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        Pos {
            line: narrow(m.line()),
            col: narrow(m.col()),
        }
    }
}

/// Where a node begins and ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Marks {
    pub start: Pos,
    pub end: Pos,
}

impl From<saphyr_parser::Span> for Marks {
    fn from(s: saphyr_parser::Span) -> Self {
        Marks {
            start: s.start.into(),
            end: s.end.into(),
        }
    }
}

/// The core-schema tag of a scalar, if it has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Core {
    None,
    Str,
    Int,
    Float,
    Bool,
    Null,
    /// `!!map`, `!!seq` on a scalar, or a tag outside the core schema (which
    /// the documents' reader refuses before a tree is built).
    Other,
}

impl Core {
    pub fn of(tag: Option<&Tag>) -> Core {
        match tag {
            None => Core::None,
            Some(t) if t.is_yaml_core_schema() => match t.suffix.as_str() {
                "str" => Core::Str,
                "int" => Core::Int,
                "float" => Core::Float,
                "bool" => Core::Bool,
                "null" => Core::Null,
                _ => Core::Other,
            },
            Some(_) => Core::Other,
        }
    }
}

/// A node and where it was written.
#[derive(Debug, Clone)]
pub(crate) struct Marked<'a> {
    pub span: Marks,
    pub data: Data<'a>,
}

#[derive(Debug, Clone)]
pub(crate) enum Data<'a> {
    /// A scalar as written: its text, its quoting and its tag.
    Scalar(Cow<'a, str>, ScalarStyle, Core),
    Seq(Vec<Marked<'a>>),
    /// Entries in the order written; no two keys are equal.
    Map(Vec<(Marked<'a>, Marked<'a>)>),
    /// An empty document.
    Empty,
}

impl Marked<'_> {
    /// Equality of content, spans aside (how keys are compared).
    fn same(&self, other: &Marked<'_>) -> bool {
        match (&self.data, &other.data) {
            (Data::Scalar(a, s, t), Data::Scalar(b, u, v)) => a == b && s == u && t == v,
            (Data::Seq(a), Data::Seq(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.same(y))
            }
            (Data::Map(a), Data::Map(b)) => {
                a.len() == b.len()
                    && a.iter()
                        .zip(b)
                        .all(|((k, v), (l, w))| k.same(l) && v.same(w))
            }
            (Data::Empty, Data::Empty) => true,
            _ => false,
        }
    }

    /// A hash of the content, consistent with [`Marked::same`].
    fn content_hash<H: Hasher>(&self, h: &mut H) {
        match &self.data {
            Data::Scalar(text, style, tag) => {
                0u8.hash(h);
                text.hash(h);
                (*style as u8).hash(h);
                tag.hash(h);
            }
            Data::Seq(items) => {
                1u8.hash(h);
                items.len().hash(h);
                for item in items {
                    item.content_hash(h);
                }
            }
            Data::Map(entries) => {
                2u8.hash(h);
                entries.len().hash(h);
                for (k, v) in entries {
                    k.content_hash(h);
                    v.content_hash(h);
                }
            }
            Data::Empty => 3u8.hash(h),
        }
    }

    /// Whether the nodes of this subtree (a mapping entry's key counts as
    /// one) number at most `budget`, which is lowered by the count; the walk
    /// stops as soon as the budget is spent.
    fn fits(&self, budget: &mut usize) -> bool {
        if *budget == 0 {
            return false;
        }
        *budget -= 1;
        match &self.data {
            Data::Seq(items) => items.iter().all(|item| item.fits(budget)),
            Data::Map(entries) => entries.iter().all(|(_, v)| {
                if *budget == 0 {
                    return false;
                }
                *budget -= 1;
                v.fits(budget)
            }),
            Data::Scalar(..) | Data::Empty => true,
        }
    }
}

/// Mappings with more entries than this look keys up in a hash index
/// rather than by comparing with each entry.
const INDEX_FROM: usize = 16;

/// A collection being read.
struct Open<'a> {
    start: Pos,
    /// A mapping (its entries are on the loader's `entries`) or a sequence
    /// (its items on `items`).
    map: bool,
    /// Where its children begin on that stack.
    first: usize,
    anchor: usize,
    /// In a mapping: the key read, waiting for its value, and where it was.
    key: Option<Marked<'a>>,
    /// In a large mapping: entry positions (from `first`) by key hash.
    index: Option<HashMap<u64, Vec<usize>>>,
}

/// Builds [`Marked`] trees from parser events.
pub(crate) struct Loader<'a> {
    docs: Vec<Marked<'a>>,
    root: Option<Marked<'a>>,
    open: Vec<Open<'a>>,
    /// The items of the open sequences, innermost last.
    items: Vec<Marked<'a>>,
    /// The entries of the open mappings, innermost last.
    entries: Vec<(Marked<'a>, Marked<'a>)>,
    anchors: HashMap<usize, Marked<'a>>,
    alias_budget: usize,
    error: Option<ScanError>,
}

impl<'a> Loader<'a> {
    /// A loader whose aliases may copy at most `alias_limit` nodes in all.
    pub fn new(alias_limit: usize) -> Self {
        Loader {
            docs: Vec::new(),
            root: None,
            open: Vec::new(),
            items: Vec::new(),
            entries: Vec::new(),
            anchors: HashMap::new(),
            alias_budget: alias_limit,
            error: None,
        }
    }

    /// The first error met; the documents are not to be used if there is one.
    pub fn error(&self) -> Option<&ScanError> {
        self.error.as_ref()
    }

    pub fn into_documents(self) -> Vec<Marked<'a>> {
        self.docs
    }

    fn event(&mut self, ev: Event<'a>, span: saphyr_parser::Span) -> Result<(), ScanError> {
        let mark = span.start;
        let span = Marks::from(span);
        match ev {
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentStart(_) => {}
            Event::DocumentEnd => {
                let root = self.root.take().unwrap_or(Marked {
                    span,
                    data: Data::Empty,
                });
                self.docs.push(root);
            }
            Event::SequenceStart(anchor, _) => self.open(false, anchor, span),
            Event::MappingStart(anchor, _) => self.open(true, anchor, span),
            Event::SequenceEnd | Event::MappingEnd => {
                let Some(open) = self.open.pop() else {
                    return Err(ScanError::new_str(
                        mark,
                        "a collection ends that never began",
                    ));
                };
                // Collected from a drain: allocated once, at its length.
                let data = if open.map {
                    Data::Map(self.entries.drain(open.first..).collect())
                } else {
                    Data::Seq(self.items.drain(open.first..).collect())
                };
                let node = Marked {
                    span: Marks {
                        start: open.start,
                        end: span.start,
                    },
                    data,
                };
                self.insert(node, open.anchor)?;
            }
            Event::Scalar(text, style, anchor, tag) => {
                let node = Marked {
                    span,
                    data: Data::Scalar(text, style, Core::of(tag.as_deref())),
                };
                self.insert(node, anchor)?;
            }
            Event::Alias(id) => {
                let Some(anchored) = self.anchors.get(&id) else {
                    return Err(ScanError::new_str(mark, "unknown anchor"));
                };
                if !anchored.fits(&mut self.alias_budget) {
                    return Err(ScanError::new_str(
                        mark,
                        "alias expansion exceeded the maximum node budget (possible billion-laughs attack)",
                    ));
                }
                let mut node = anchored.clone();
                node.span = span;
                self.insert(node, 0)?;
            }
        }
        Ok(())
    }

    fn open(&mut self, map: bool, anchor: usize, span: Marks) {
        let first = if map {
            self.entries.len()
        } else {
            self.items.len()
        };
        self.open.push(Open {
            start: span.start,
            map,
            first,
            anchor,
            key: None,
            index: None,
        });
    }

    /// Place a finished node: in the open collection (as an item, a key or
    /// a value), or as the document's root.
    fn insert(&mut self, node: Marked<'a>, anchor: usize) -> Result<(), ScanError> {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        let Some(parent) = self.open.last_mut() else {
            self.root = Some(node);
            return Ok(());
        };
        if !parent.map {
            self.items.push(node);
            return Ok(());
        }
        match parent.key.take() {
            None => parent.key = Some(node),
            Some(key) => {
                if has_key(&self.entries[parent.first..], &mut parent.index, &key) {
                    let at = key.span.start;
                    return Err(ScanError::new_str(
                        saphyr_parser::Marker::new(0, at.line as usize, at.col as usize),
                        "duplicated key in mapping",
                    ));
                }
                self.entries.push((key, node));
            }
        }
        Ok(())
    }
}

/// Whether `key` is among the keys of `entries`; records it in `index` (kept
/// once the mapping is large) as the next entry's.
fn has_key(
    entries: &[(Marked<'_>, Marked<'_>)],
    index: &mut Option<HashMap<u64, Vec<usize>>>,
    key: &Marked<'_>,
) -> bool {
    if entries.len() < INDEX_FROM {
        return entries.iter().any(|(k, _)| k.same(key));
    }
    let hash_of = |k: &Marked<'_>| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        k.content_hash(&mut h);
        h.finish()
    };
    let index = index.get_or_insert_with(|| {
        let mut m: HashMap<u64, Vec<usize>> = HashMap::with_capacity(entries.len() * 2);
        for (i, (k, _)) in entries.iter().enumerate() {
            m.entry(hash_of(k)).or_default().push(i);
        }
        m
    });
    let slot = index.entry(hash_of(key)).or_default();
    if slot.iter().any(|&i| entries[i].0.same(key)) {
        return true;
    }
    slot.push(entries.len());
    false
}

impl<'a> SpannedEventReceiver<'a> for Loader<'a> {
    fn on_event(&mut self, ev: Event<'a>, span: saphyr_parser::Span) {
        if self.error.is_some() {
            return;
        }
        if let Err(e) = self.event(ev, span) {
            self.error = Some(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Vec<Marked<'_>>, String> {
        let mut parser = saphyr_parser::Parser::new_from_str(text);
        let mut loader = Loader::new(100);
        while let Some(next) = parser.next_event() {
            let (ev, span) = next.map_err(|e| e.to_string())?;
            loader.on_event(ev, span);
        }
        match loader.error() {
            Some(e) => Err(format!(
                "{}:{} {}",
                e.marker().line(),
                e.marker().col(),
                e.info()
            )),
            None => Ok(loader.into_documents()),
        }
    }

    fn keys(node: &Marked<'_>) -> Vec<String> {
        match &node.data {
            Data::Map(entries) => entries
                .iter()
                .map(|(k, _)| match &k.data {
                    Data::Scalar(t, ..) => t.to_string(),
                    _ => "?".into(),
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    #[test]
    fn mappings_keep_the_written_order_and_spans() {
        let docs = load("b: 1\na: [x, y]\nc:\n  d: e\n").unwrap();
        assert_eq!(keys(&docs[0]), ["b", "a", "c"]);
        let Data::Map(entries) = &docs[0].data else {
            panic!()
        };
        let (k, v) = &entries[2];
        assert_eq!((k.span.start.line, k.span.start.col), (3, 0));
        assert_eq!((v.span.start.line, v.span.start.col), (4, 2));
        let Data::Seq(items) = &entries[1].1.data else {
            panic!()
        };
        assert_eq!(items.len(), 2);
    }

    #[test]
    fn a_repeated_key_is_an_error_at_its_second_writing() {
        assert_eq!(
            load("a: 1\nb: 2\na: 3\n").unwrap_err(),
            "3:0 duplicated key in mapping"
        );
        // Quoting makes a different scalar here (typing catches it).
        assert!(load("a: 1\n\"a\": 2\n").is_ok());
        // Large mappings look keys up by hash.
        let mut big: String = (0..40).map(|i| format!("k{i}: {i}\n")).collect();
        assert!(load(&big).is_ok());
        big.push_str("k7: again\n");
        assert_eq!(load(&big).unwrap_err(), "41:0 duplicated key in mapping");
        // Keys that are collections compare by content.
        assert!(load("? [a, b]\n: 1\n? [a, b]\n: 2\n").is_err());
        assert!(load("? [a, b]\n: 1\n? [b, a]\n: 2\n").is_ok());
    }

    #[test]
    fn aliases_copy_their_anchor_within_the_budget() {
        let docs = load("a: &x {p: 1, q: [2, 3]}\nb: *x\n").unwrap();
        let Data::Map(entries) = &docs[0].data else {
            panic!()
        };
        assert!(entries[0].1.same(&entries[1].1));
        assert_eq!(entries[1].1.span.start.line, 2);
        // Each copy of `l` is 1 + 10 nodes: ten of them exceed 100.
        let bomb = format!(
            "l: &l [{}]\nm: [{}]\n",
            ["x"; 10].join(", "),
            ["*l"; 10].join(", ")
        );
        assert!(load(&bomb).unwrap_err().contains("billion-laughs"));
    }

    #[test]
    fn documents_are_one_root_each() {
        let docs = load("a: 1\n---\n- b\n---\n").unwrap();
        assert_eq!(docs.len(), 3);
        assert!(matches!(docs[1].data, Data::Seq(_)));
        assert!(matches!(&docs[2].data, Data::Scalar(t, ..) if t.is_empty()));
    }
}
