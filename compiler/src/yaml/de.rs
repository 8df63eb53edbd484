//! A serde deserializer over the marked tree, so that every object is parsed
//! once: the tree that locates semantic errors also yields the typed resource.
//!
//! Scalars are kept as written (text, style, tag) and read the way the target
//! asks, with the rules of `serde-saphyr`'s default options (the tests hold
//! the two to the same answers):
//! - a string target takes the text of any scalar but a plain null (`~`,
//!   `null`, empty); quoted text stays text;
//! - a number or boolean target parses the text whatever its quoting
//!   (decimal without leading zeros, `0x`, `0o`, `0b`, `_` between digits;
//!   YAML 1.1 booleans `yes`/`no`/`on`/`off`/`y`/`n`; YAML 1.2 floats);
//! - an untyped target (`IntOrString`, JSON values) sees a plain scalar as
//!   null, boolean, integer, float or string, in that order, and anything
//!   quoted or tagged `!!str` as a string;
//! - `<<` merges the mapping (or mappings) it names, as Kubernetes' YAML
//!   reader does; the keys written beside it win.
//!
//! Every error carries the span of the innermost node it is about: the scalar
//! that does not parse, the key that is unknown, the mapping that lacks a
//! field.

use std::fmt;

use super::tree::{Core, Data, Marked, Marks};
use saphyr_parser::ScalarStyle;
use serde::de::{self, DeserializeSeed, IntoDeserializer, Unexpected, Visitor};

/// A deserialization error and the node it is about.
#[derive(Debug)]
pub struct Error {
    pub message: String,
    pub at: Option<Marks>,
}

impl Error {
    fn new(message: impl Into<String>, node: &Marked) -> Self {
        Error {
            message: message.into(),
            at: Some(node.span),
        }
    }

    /// Locate an error that has no node yet at `node`.
    fn or_at(mut self, node: &Marked) -> Self {
        self.at.get_or_insert(node.span);
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error {
            message: msg.to_string(),
            at: None,
        }
    }
}

/// Deserialize a `T` from `node`.
pub fn from_node<'de, T: de::Deserialize<'de>>(node: &'de Marked<'de>) -> Result<T, Error> {
    T::deserialize(Node(node, 0))
}

/// A scalar as written.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Text<'a> {
    pub text: &'a str,
    plain: bool,
    tag: Core,
}

/// What an untyped reader makes of a scalar.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Resolved<'a> {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(&'a str),
}

impl<'a> Text<'a> {
    pub(crate) fn of(node: &'a Marked<'a>) -> Option<Text<'a>> {
        match &node.data {
            Data::Scalar(text, style, tag) => Some(Text {
                text: text.as_ref(),
                plain: *style == ScalarStyle::Plain,
                tag: *tag,
            }),
            _ => None,
        }
    }

    fn is_null(&self) -> bool {
        self.tag == Core::Null
            || (self.tag == Core::None
                && self.plain
                && matches!(self.text, "" | "~" | "null" | "Null" | "NULL"))
    }

    /// The text, if YAML 1.2's core schema reads the scalar as a string (the
    /// reading of the tree's own accessors: `off` and `yes` are strings there,
    /// `80`, `true` and `~` are not).
    pub(crate) fn core_str(&self) -> Option<&'a str> {
        let string = match self.tag {
            Core::Str | Core::Other => true,
            Core::Int | Core::Float | Core::Bool | Core::Null => false,
            Core::None => !self.plain || !core_non_string(self.text),
        };
        string.then_some(self.text)
    }

    /// The untyped reading (what `deserialize_any` visits).
    pub(crate) fn resolve(&self) -> Resolved<'a> {
        let t = trim(self.text);
        match self.tag {
            Core::Null => return Resolved::Null,
            Core::Str | Core::Other => return Resolved::Str(self.text),
            Core::Bool => return bool11(t).map_or(Resolved::Str(self.text), Resolved::Bool),
            Core::Int | Core::Float | Core::None => {}
        }
        if self.tag == Core::None && !self.plain {
            return Resolved::Str(self.text);
        }
        if self.is_null() {
            return Resolved::Null;
        }
        if self.tag == Core::None
            && let Some(b) = bool11(t)
        {
            return Resolved::Bool(b);
        }
        if self.tag != Core::Float {
            if t.starts_with('-') {
                if !leading_zero_decimal(t)
                    && let Some(v) = int_signed(t)
                {
                    return Resolved::Int(v);
                }
            } else if let Some(v) = int_unsigned(t) {
                return Resolved::UInt(v);
            }
        }
        if let Some(v) = float_incl_overflow(t) {
            return Resolved::Float(v);
        }
        Resolved::Str(self.text)
    }
}

/// Whether a plain scalar is a null, boolean, integer or float in YAML 1.2's
/// core schema.
fn core_non_string(t: &str) -> bool {
    let all = |s: &str, f: fn(u8) -> bool| !s.is_empty() && s.bytes().all(f);
    let unsigned = t.strip_prefix(['+', '-']).unwrap_or(t);
    let decimal = |s: &str| all(s, |b| b.is_ascii_digit());
    let float = |s: &str| {
        let (mantissa, exp) = match s.find(['e', 'E']) {
            Some(i) => (&s[..i], Some(&s[i + 1..])),
            None => (s, None),
        };
        let mantissa_ok = match mantissa.split_once('.') {
            Some((i, f)) => {
                (i.is_empty() && decimal(f)) || (decimal(i) && (f.is_empty() || decimal(f)))
            }
            None => decimal(mantissa),
        };
        mantissa_ok && exp.is_none_or(|e| decimal(e.strip_prefix(['+', '-']).unwrap_or(e)))
    };
    matches!(
        t,
        "" | "~"
            | "null"
            | "Null"
            | "NULL"
            | "true"
            | "True"
            | "TRUE"
            | "false"
            | "False"
            | "FALSE"
    ) || t
        .strip_prefix("0o")
        .is_some_and(|d| all(d, |b| (b'0'..=b'7').contains(&b)))
        || t.strip_prefix("0x")
            .is_some_and(|d| all(d, |b| b.is_ascii_hexdigit()))
        || matches!(unsigned, ".inf" | ".Inf" | ".INF")
        || matches!(t, ".nan" | ".NaN" | ".NAN")
        || float(unsigned)
}

/// The padding serde-saphyr ignores around numbers and booleans.
fn trim(s: &str) -> &str {
    s.trim_matches([' ', '\t', '\r', '\n'])
}

/// YAML 1.1 booleans (`yes`, `on`, `y`, ... in any case).
fn bool11(t: &str) -> Option<bool> {
    const TRUE: [&str; 4] = ["true", "yes", "y", "on"];
    const FALSE: [&str; 4] = ["false", "no", "n", "off"];
    if TRUE.iter().any(|w| t.eq_ignore_ascii_case(w)) {
        Some(true)
    } else if FALSE.iter().any(|w| t.eq_ignore_ascii_case(w)) {
        Some(false)
    } else {
        None
    }
}

fn leading_zero_decimal(t: &str) -> bool {
    let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
    digits.len() > 1 && digits.starts_with('0') && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Digits in `radix`, `_` allowed between two digits.
fn digits(s: &str, radix: u32) -> Option<u128> {
    let b = s.as_bytes();
    let mut val: u128 = 0;
    let mut saw = false;
    for (i, &c) in b.iter().enumerate() {
        if c == b'_' {
            if i == 0 || b[i - 1] == b'_' || i + 1 == b.len() || b[i + 1] == b'_' {
                return None;
            }
            continue;
        }
        let d = (c as char).to_digit(radix)?;
        val = val
            .checked_mul(u128::from(radix))?
            .checked_add(u128::from(d))?;
        saw = true;
    }
    saw.then_some(val)
}

/// The magnitude of an unsigned integer literal: `0x`, `0o`, `0b` or decimal
/// without leading zeros.
fn magnitude(rest: &str) -> Option<u128> {
    let prefixed = |p: [&str; 2]| rest.strip_prefix(p[0]).or_else(|| rest.strip_prefix(p[1]));
    if let Some(r) = prefixed(["0x", "0X"]) {
        digits(r, 16)
    } else if let Some(r) = prefixed(["0o", "0O"]) {
        digits(r, 8)
    } else if let Some(r) = prefixed(["0b", "0B"]) {
        digits(r, 2)
    } else if rest.starts_with('0') && rest != "0" {
        None
    } else {
        digits(rest, 10)
    }
}

fn int_i128(t: &str) -> Option<i128> {
    let (neg, rest) = match t.strip_prefix('+') {
        Some(r) => (false, r),
        None => match t.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, t),
        },
    };
    let mag = magnitude(rest)?;
    if neg {
        if mag == i128::MAX as u128 + 1 {
            Some(i128::MIN)
        } else {
            i128::try_from(mag).ok().map(|m| -m)
        }
    } else {
        i128::try_from(mag).ok()
    }
}

fn int_signed<T: TryFrom<i128>>(t: &str) -> Option<T> {
    int_i128(t).and_then(|v| T::try_from(v).ok())
}

fn int_unsigned<T: TryFrom<u128>>(t: &str) -> Option<T> {
    if t.starts_with('-') {
        return None;
    }
    magnitude(t.strip_prefix('+').unwrap_or(t)).and_then(|v| T::try_from(v).ok())
}

/// A YAML 1.2 float: finite decimal notation, `.inf`, `.nan`.
fn float(t: &str) -> Option<f64> {
    let (neg, unsigned) = match t.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    match unsigned {
        ".nan" | ".NaN" | ".NAN" => return Some(f64::NAN),
        ".inf" | ".Inf" | ".INF" => {
            return Some(if neg {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            });
        }
        _ => {}
    }
    t.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// As [`float`], and a literal too large for `f64` is infinite.
fn float_incl_overflow(t: &str) -> Option<f64> {
    float(t).or_else(|| {
        let unsigned = t.strip_prefix(['+', '-']).unwrap_or(t);
        if !unsigned.as_bytes().first().is_some_and(u8::is_ascii_digit) {
            return None;
        }
        t.parse::<f64>().ok().filter(|v| v.is_infinite())
    })
}

/// What a node is, for "invalid type" messages.
fn unexpected<'a>(node: &'a Marked<'a>) -> Unexpected<'a> {
    match &node.data {
        Data::Seq(_) => Unexpected::Seq,
        Data::Map(_) => Unexpected::Map,
        _ => match Text::of(node).map(|t| t.resolve()) {
            Some(Resolved::Null) => Unexpected::Unit,
            Some(Resolved::Bool(b)) => Unexpected::Bool(b),
            Some(Resolved::Int(i)) => Unexpected::Signed(i),
            Some(Resolved::UInt(u)) => Unexpected::Unsigned(u),
            Some(Resolved::Float(f)) => Unexpected::Float(f),
            Some(Resolved::Str(s)) => Unexpected::Str(s),
            None => Unexpected::Other("an unsupported node"),
        },
    }
}

/// Levels of nesting a typed object may have. The parser bounds the text's
/// nesting; aliases can deepen the tree past it, and deserialization recurses
/// once per level.
const DEPTH_LIMIT: u32 = 256;

/// The deserializer of one node, and how deep it is.
#[derive(Clone, Copy)]
struct Node<'de>(&'de Marked<'de>, u32);

impl<'de> Node<'de> {
    /// The depth of this node's children, if they may be read.
    fn inner(&self) -> Result<u32, Error> {
        if self.1 >= DEPTH_LIMIT {
            return Err(Error::new(
                format!("nesting deeper than {DEPTH_LIMIT} levels (aliases included)"),
                self.0,
            ));
        }
        Ok(self.1 + 1)
    }

    fn invalid_type(&self, exp: &dyn de::Expected) -> Error {
        let e: Error = de::Error::invalid_type(unexpected(self.0), exp);
        e.or_at(self.0)
    }

    /// The scalar a number or boolean is parsed from: any quoting, no tag
    /// that says otherwise.
    fn scalar_for(&self, want: Core, exp: &dyn de::Expected) -> Result<&'de str, Error> {
        match Text::of(self.0) {
            Some(t) if matches!(t.tag, Core::None | Core::Other) || t.tag == want => {
                Ok(trim(t.text))
            }
            _ => Err(self.invalid_type(exp)),
        }
    }

    /// "`eighty-one` is not a 32-bit integer"; `what` is a Rust type name
    /// or a plain description.
    fn invalid_scalar(&self, what: &str, text: &str) -> Error {
        let what = match what {
            "i8" | "i16" | "i32" | "i64" => format!("a {}-bit integer", &what[1..]),
            "u8" | "u16" | "u32" | "u64" => format!("an unsigned {}-bit integer", &what[1..]),
            "boolean" => "a boolean (true or false)".to_owned(),
            "floating point" => "a number".to_owned(),
            other => format!("a valid {other}"),
        };
        Error::new(format!("`{text}` is not {what}"), self.0)
    }
}

/// `deserialize_<int>` methods: `$parse` reads the text as `$ty`.
macro_rules! ints {
    ($($method:ident $visit:ident $ty:ident $parse:ident),*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            let t = self.scalar_for(Core::Int, &visitor)?;
            let v: $ty = $parse(t).ok_or_else(|| self.invalid_scalar(stringify!($ty), t))?;
            visitor.$visit(v).map_err(|e: Error| e.or_at(self.0))
        }
    )*};
}

impl<'de> de::Deserializer<'de> for Node<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let node = self.0;
        let r = match &node.data {
            Data::Seq(_) => return self.deserialize_seq(visitor),
            Data::Map(_) => return self.deserialize_map(visitor),
            _ => match Text::of(node) {
                Some(t) => match (t.tag, t.resolve()) {
                    // An explicit `!!int` that does not parse is an error, not a string.
                    (Core::Int, Resolved::Str(_) | Resolved::Float(_) | Resolved::Bool(_)) => {
                        return Err(self.invalid_scalar("integer", trim(t.text)));
                    }
                    (Core::Float, Resolved::Str(_)) => {
                        return Err(self.invalid_scalar("floating point", trim(t.text)));
                    }
                    (Core::Bool, Resolved::Str(_)) => {
                        return Err(self.invalid_scalar("boolean", trim(t.text)));
                    }
                    (_, Resolved::Null) => visitor.visit_unit(),
                    (_, Resolved::Bool(b)) => visitor.visit_bool(b),
                    (_, Resolved::Int(i)) => visitor.visit_i64(i),
                    (_, Resolved::UInt(u)) => visitor.visit_u64(u),
                    (_, Resolved::Float(f)) if f.is_finite() => visitor.visit_f64(f),
                    (_, Resolved::Float(_)) => {
                        return Err(Error::new(
                            format!(
                                "the non-finite number `{}` is not allowed here",
                                trim(t.text)
                            ),
                            node,
                        ));
                    }
                    (_, Resolved::Str(s)) => visitor.visit_borrowed_str(s),
                },
                None => return Err(Error::new("unsupported YAML node", node)),
            },
        };
        r.map_err(|e: Error| e.or_at(node))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let t = self.scalar_for(Core::Bool, &visitor)?;
        let b = bool11(t).ok_or_else(|| self.invalid_scalar("boolean", t))?;
        visitor.visit_bool(b).map_err(|e: Error| e.or_at(self.0))
    }

    ints!(deserialize_i8 visit_i8 i8 int_signed, deserialize_i16 visit_i16 i16 int_signed,
        deserialize_i32 visit_i32 i32 int_signed, deserialize_i64 visit_i64 i64 int_signed,
        deserialize_u8 visit_u8 u8 int_unsigned, deserialize_u16 visit_u16 u16 int_unsigned,
        deserialize_u32 visit_u32 u32 int_unsigned, deserialize_u64 visit_u64 u64 int_unsigned);

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let t = self.scalar_for(Core::Float, &visitor)?;
        let v = float(t).ok_or_else(|| self.invalid_scalar("floating point", t))?;
        visitor.visit_f64(v).map_err(|e: Error| e.or_at(self.0))
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match Text::of(self.0) {
            Some(t) if t.is_null() => Err(Error::new(
                "null where a string is expected (quote it: \"\", or leave the field out)",
                self.0,
            )),
            Some(t) if matches!(t.tag, Core::None | Core::Str) => visitor
                .visit_borrowed_str(t.text)
                .map_err(|e: Error| e.or_at(self.0)),
            _ => Err(self.invalid_type(&visitor)),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match Text::of(self.0) {
            Some(t) if t.is_null() => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
        .map_err(|e: Error| e.or_at(self.0))
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match Text::of(self.0) {
            Some(t) if t.is_null() => visitor.visit_unit().map_err(|e: Error| e.or_at(self.0)),
            _ => Err(self.invalid_type(&visitor)),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        match &self.0.data {
            Data::Map(m) if m.is_empty() => visitor.visit_unit(),
            _ => self.deserialize_unit(visitor),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor
            .visit_newtype_struct(self)
            .map_err(|e: Error| e.or_at(self.0))
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match &self.0.data {
            Data::Seq(items) => visitor
                .visit_seq(Seq(items.iter(), self.inner()?))
                .map_err(|e: Error| e.or_at(self.0)),
            _ => Err(self.invalid_type(&visitor)),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match &self.0.data {
            Data::Map(_) => {
                let entries = entries(self.0)?;
                visitor
                    .visit_map(Map {
                        depth: self.inner()?,
                        entries: entries.into_iter(),
                        value: None,
                    })
                    .map_err(|e: Error| e.or_at(self.0))
            }
            _ => Err(self.invalid_type(&visitor)),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_map(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let r = match &self.0.data {
            Data::Map(m) if m.len() == 1 => {
                let (k, v) = m.iter().next().expect("one entry");
                visitor.visit_enum(Enum {
                    variant: Node(k, self.inner()?),
                    value: Some(Node(v, self.inner()?)),
                })
            }
            Data::Map(_) | Data::Seq(_) => {
                return Err(Error::new(
                    "expected a variant name, or a mapping of one variant to its value",
                    self.0,
                ));
            }
            _ => visitor.visit_enum(Enum {
                variant: self,
                value: None,
            }),
        };
        r.map_err(|e: Error| e.or_at(self.0))
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match Text::of(self.0) {
            Some(t) => visitor
                .visit_borrowed_str(t.text)
                .map_err(|e: Error| e.or_at(self.0)),
            None => Err(self.invalid_type(&visitor)),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }
}

/// The entries of a mapping, with `<<` merges resolved: keys written in the
/// mapping first, then those of each merged mapping not already present.
/// Keys that read the same (`a` and `"a"`) are an error.
fn entries<'de>(
    node: &'de Marked<'de>,
) -> Result<Vec<(&'de Marked<'de>, &'de Marked<'de>)>, Error> {
    let Data::Map(map) = &node.data else {
        return Ok(Vec::new());
    };
    let mut out: Vec<(&Marked, &Marked)> = Vec::with_capacity(map.len());
    let mut merges = Vec::new();
    for (k, v) in map.iter() {
        match Text::of(k) {
            Some(t) if t.plain && t.tag == Core::None && t.text == "<<" => merges.push(v),
            _ => out.push((k, v)),
        }
    }
    let key = |k: &Marked| Text::of(k).map(|t| t.text.to_owned());
    // Keys of one style that repeat are refused by the loader; catch the
    // ones that differ only in quoting (there is a quoted or tagged key).
    let mixed = out
        .iter()
        .any(|(k, _)| Text::of(k).is_some_and(|t| !t.plain || t.tag != Core::None));
    if mixed && out.len() > 1 {
        let mut seen = std::collections::HashSet::with_capacity(out.len());
        for (k, _) in &out {
            if let Some(t) = Text::of(k)
                && !seen.insert(t.text)
            {
                return Err(Error::new(
                    format!("duplicate key `{}` in the mapping", t.text),
                    k,
                ));
            }
        }
    }
    for m in merges {
        let sources: Vec<&Marked> = match &m.data {
            Data::Map(_) => vec![m],
            Data::Seq(items) => items.iter().collect(),
            _ => {
                return Err(Error::new("`<<` merges a mapping or a list of mappings", m));
            }
        };
        for src in sources {
            if !matches!(src.data, Data::Map(_)) {
                return Err(Error::new(
                    "`<<` merges a mapping or a list of mappings",
                    src,
                ));
            }
            for (k, v) in entries(src)? {
                let name = key(k);
                if name.is_none() || !out.iter().any(|(o, _)| key(o) == name) {
                    out.push((k, v));
                }
            }
        }
    }
    Ok(out)
}

struct Seq<'de>(std::slice::Iter<'de, Marked<'de>>, u32);

impl<'de> de::SeqAccess<'de> for Seq<'de> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        match self.0.next() {
            Some(item) => seed
                .deserialize(Node(item, self.1))
                .map(Some)
                .map_err(|e: Error| e.or_at(item)),
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

type Entries<'de> = std::vec::IntoIter<(&'de Marked<'de>, &'de Marked<'de>)>;

struct Map<'de> {
    depth: u32,
    entries: Entries<'de>,
    value: Option<&'de Marked<'de>>,
}

impl<'de> de::MapAccess<'de> for Map<'de> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        match self.entries.next() {
            Some((k, v)) => {
                self.value = Some(v);
                seed.deserialize(Node(k, self.depth))
                    .map(Some)
                    .map_err(|e: Error| e.or_at(k))
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let v = self
            .value
            .take()
            .ok_or_else(|| <Error as de::Error>::custom("a value was asked for before its key"))?;
        seed.deserialize(Node(v, self.depth))
            .map_err(|e: Error| e.or_at(v))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

struct Enum<'de> {
    variant: Node<'de>,
    value: Option<Node<'de>>,
}

impl<'de> de::EnumAccess<'de> for Enum<'de> {
    type Error = Error;
    type Variant = Variant<'de>;

    fn variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<(T::Value, Variant<'de>), Error> {
        let node = self.variant.0;
        let name = match Text::of(node) {
            Some(t) if !t.is_null() => t.text,
            _ => return Err(Error::new("expected a variant name", node)),
        };
        let v = seed
            .deserialize(name.into_deserializer())
            .map_err(|e: Error| e.or_at(node))?;
        Ok((
            v,
            Variant {
                at: node,
                value: self.value,
            },
        ))
    }
}

struct Variant<'de> {
    at: &'de Marked<'de>,
    value: Option<Node<'de>>,
}

impl<'de> de::VariantAccess<'de> for Variant<'de> {
    type Error = Error;

    fn unit_variant(self) -> Result<(), Error> {
        match self.value {
            None => Ok(()),
            Some(v) => de::Deserialize::deserialize(v),
        }
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        match self.value {
            Some(v) => seed.deserialize(v),
            None => Err(Error::new("the variant needs a value", self.at)),
        }
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        match self.value {
            Some(v) => de::Deserializer::deserialize_seq(v, visitor),
            None => Err(Error::new("the variant needs a list", self.at)),
        }
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.value {
            Some(v) => de::Deserializer::deserialize_map(v, visitor),
            None => Err(Error::new("the variant needs a mapping", self.at)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Aliases nest a tree deeper than its text: typing stops at the limit
    /// with a located error instead of recursing on.
    #[test]
    fn deep_alias_trees_are_refused_not_followed() {
        let mut text = String::from("a0: &a0 [x]\n");
        for i in 1..40 {
            let open = "[".repeat(10);
            let close = "]".repeat(10);
            text.push_str(&format!("a{i}: &a{i} {open}*a{}{close}\n", i - 1));
        }
        let mut loader = crate::yaml::tree::Loader::new(usize::MAX);
        let mut parser = saphyr_parser::Parser::new_from_str(&text);
        while let Some(Ok((ev, span))) = parser.next_event() {
            saphyr_parser::SpannedEventReceiver::on_event(&mut loader, ev, span);
        }
        let docs = loader.into_documents();
        let err = from_node::<serde_json::Value>(&docs[0]).unwrap_err();
        assert!(err.message.contains("nesting deeper than 256"), "{err}");
        assert!(err.at.is_some());
    }

    /// The tree's accessors read plain scalars as saphyr's own core-schema
    /// resolution does.
    #[test]
    fn core_strings_are_saphyrs() {
        let words = [
            "",
            "~",
            "null",
            "Null",
            "NULL",
            "nULL",
            "true",
            "True",
            "TRUE",
            "tRUE",
            "false",
            "off",
            "on",
            "yes",
            "no",
            "y",
            "0",
            "-0",
            "+1",
            "007",
            "0o17",
            "0o18",
            "0O17",
            "0x1F",
            "0xg",
            "0X1F",
            "1_000",
            "1.5",
            "-1.5",
            "+.5",
            ".5",
            "1.",
            "1e3",
            "1E-3",
            "1.5e+3",
            "e3",
            "1e",
            ".",
            "-",
            "+",
            ".inf",
            "-.inf",
            "+.INF",
            ".Inf",
            ".nan",
            "-.nan",
            ".NaN",
            "inf",
            "nan",
            "1:20",
            "2001-12-14",
            "abc",
            "v1",
            "a b",
            "8080/tcp",
        ];
        for w in words {
            let ours = Text {
                text: w,
                plain: true,
                tag: Core::None,
            }
            .core_str()
            .is_some();
            let theirs = matches!(
                saphyr::Scalar::parse_from_cow_and_metadata(w.into(), ScalarStyle::Plain, None),
                Some(saphyr::Scalar::String(_))
            );
            assert_eq!(ours, theirs, "{w:?}");
        }
    }
}
