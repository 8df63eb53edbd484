//! Where things are written: every object of the input by kind, namespace
//! and name, so that a finding points at the most specific YAML node (a
//! rule, a peer, a selector key) and reads the object's annotations.
//!
//! The files are parsed again here (the same parser loading uses), so the
//! policy IR stays free of source positions.

use std::collections::{BTreeSet, HashMap};

use ambit_compiler::diag::Diagnostic;
use ambit_compiler::source::{Location, SourceFile};
use ambit_compiler::yaml::{self, Document, Object, Seg};

/// The annotation that silences rules on one resource:
/// `ambit.dev/ignore: NP003,RX101`.
pub const IGNORE_ANNOTATION: &str = "ambit.dev/ignore";

/// An object of the input: kind, namespace (empty when cluster-scoped) and
/// name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn new(kind: &str, namespace: &str, name: &str) -> Self {
        Self {
            kind: kind.to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }
}

/// Kinds that are not namespaced.
const CLUSTER_SCOPED: &[&str] = &[
    "Namespace",
    "Node",
    "ClusterNetworkPolicy",
    "AdminNetworkPolicy",
    "BaselineAdminNetworkPolicy",
];

/// Every object of the input, parsed with positions.
#[derive(Debug)]
pub struct Sites<'f> {
    documents: Vec<Document<'f>>,
    /// Object → (document, item of a `kind: List`); the first definition
    /// wins, as in loading.
    index: HashMap<ObjectKey, (usize, usize)>,
}

impl<'f> Sites<'f> {
    pub fn new(files: &'f [SourceFile], default_namespace: &str) -> Self {
        let mut documents = Vec::new();
        for file in files {
            let mut syntax: Vec<Diagnostic> = Vec::new();
            documents.extend(yaml::documents(file, &mut syntax));
        }
        let mut index = HashMap::new();
        for (d, doc) in documents.iter().enumerate() {
            for (i, obj) in doc.objects().iter().enumerate() {
                let (Some(kind), Some(name)) = (
                    obj.str_at(&["kind".into()]),
                    obj.str_at(&["metadata".into(), "name".into()]),
                ) else {
                    continue;
                };
                let namespace = if CLUSTER_SCOPED.contains(&kind) {
                    ""
                } else {
                    obj.str_at(&["metadata".into(), "namespace".into()])
                        .filter(|n| !n.is_empty())
                        .unwrap_or(default_namespace)
                };
                index
                    .entry(ObjectKey::new(kind, namespace, name))
                    .or_insert((d, i));
            }
        }
        Sites { documents, index }
    }

    fn object(&self, key: &ObjectKey) -> Option<Object<'_>> {
        let &(d, i) = self.index.get(key)?;
        self.documents[d].objects().get(i).copied()
    }

    /// The node at `path` of the object (or its deepest existing ancestor).
    pub fn locate(&self, key: &ObjectKey, path: &[Seg]) -> Option<Location> {
        let obj = self.object(key)?;
        Some(Location {
            file: obj.file().clone(),
            span: obj.locate(path),
        })
    }

    /// The key of the last segment of `path` (a mapping key), or the node.
    pub fn locate_key(&self, key: &ObjectKey, path: &[Seg]) -> Option<Location> {
        let obj = self.object(key)?;
        Some(Location {
            file: obj.file().clone(),
            span: obj.locate_key(path),
        })
    }

    /// The rule codes the object's `ambit.dev/ignore` annotation lists.
    pub fn ignored(&self, key: &ObjectKey) -> BTreeSet<String> {
        self.object(key)
            .and_then(|o| {
                o.str_at(&[
                    "metadata".into(),
                    "annotations".into(),
                    Seg::Owned(IGNORE_ANNOTATION.to_owned()),
                ])
            })
            .map(|s| {
                s.split(',')
                    .map(|c| c.trim().to_owned())
                    .filter(|c| !c.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The selector written at `path`: each requirement with where it is.
    pub fn selector_terms(&self, key: &ObjectKey, path: &[Seg]) -> Vec<Term> {
        let Some(obj) = self.object(key) else {
            return Vec::new();
        };
        let mut terms = Vec::new();
        let labels: Vec<Seg> = path
            .iter()
            .cloned()
            .chain([Seg::Key("matchLabels")])
            .collect();
        for k in obj.keys_at(&labels) {
            let at: Vec<Seg> = labels
                .iter()
                .cloned()
                .chain([Seg::Owned(k.clone())])
                .collect();
            let value = obj.str_at(&at).map(str::to_owned);
            terms.push(Term {
                key: k,
                values: value.into_iter().collect(),
                positive: true,
                path: at,
            });
        }
        let exprs: Vec<Seg> = path
            .iter()
            .cloned()
            .chain([Seg::Key("matchExpressions")])
            .collect();
        for i in 0..obj.sequence_len(&exprs).unwrap_or(0) {
            let e: Vec<Seg> = exprs.iter().cloned().chain([Seg::Index(i)]).collect();
            let at =
                |k: &'static str| -> Vec<Seg> { e.iter().cloned().chain([Seg::Key(k)]).collect() };
            let Some(key) = obj.str_at(&at("key")) else {
                continue;
            };
            let operator = obj.str_at(&at("operator")).unwrap_or_default();
            let values_path = at("values");
            let values = (0..obj.sequence_len(&values_path).unwrap_or(0))
                .filter_map(|j| {
                    let v: Vec<Seg> = values_path.iter().cloned().chain([Seg::Index(j)]).collect();
                    obj.str_at(&v).map(str::to_owned)
                })
                .collect();
            terms.push(Term {
                key: key.to_owned(),
                values,
                positive: matches!(operator, "In" | "Exists"),
                path: at("key"),
            });
        }
        terms
    }
}

/// One requirement of a selector as written.
#[derive(Debug, Clone)]
pub struct Term {
    pub key: String,
    /// `matchLabels` value or `In`/`NotIn` values.
    pub values: Vec<String>,
    /// `matchLabels`, `In` or `Exists`: the label must be there.
    pub positive: bool,
    /// Where the key is written.
    pub path: Vec<Seg>,
}
