//! The query language of `ambit query PATHS 'EXPR'` (parsed with nom).
//!
//! ```text
//! query    = source "->" target [method path]
//! source   = "who" | "*" | ends
//! target   = ("*" | ends) [":" port ["/" protocol]]
//! ends     = "ip:" address | namespace "/" workload | selector
//! selector = term { "," term }
//! term     = "ns:" nsname "/" requirement     a namespace by name, then a pod requirement
//!          | "ns:" nsname                     every pod of the namespace
//!          | "ns:" requirement                a namespace label requirement
//!          | requirement                      a pod label requirement
//! requirement = key | "!" key | key ("=" | "==" | "!=") value
//!             | key ("in" | "notin") "(" value { "," value } ")"
//! ```
//!
//! Examples: `shop/web -> pay/db:5432`, `shop/web -> pay/db:5432/udp`,
//! `who -> pay/db:5432`, `shop/web -> *`,
//! `ns:env=prod,app=web -> ns:pay/app in (db,cache):5432`,
//! `shop/web -> pay/api:8080 GET /v1/orders`, `ip:203.0.113.9 -> shop/web:8080`
//! (an IPv6 address with a port in brackets: `ip:[2001:db8::1]:443`).
//!
//! A namespace name has no dot (it is a DNS label), which tells
//! `ns:pay/app=db` (namespace `pay`) from `ns:example.com/team=x` (a
//! prefixed label key). A bare name after `ns:` is the namespace of that
//! name (its `kubernetes.io/metadata.name` label).

use std::collections::BTreeSet;
use std::net::IpAddr;

use nom::branch::alt;
use nom::bytes::complete::{tag, tag_no_case, take_while, take_while1};
use nom::character::complete::{char, digit1, multispace0, multispace1};
use nom::combinator::{cut, eof, opt, peek, recognize};
use nom::error::{ErrorKind, ParseError};
use nom::multi::separated_list1;
use nom::sequence::{delimited, pair, preceded, terminated};
use nom::{IResult, Parser};

use crate::diag::{Code, Diagnostic};
use crate::labels::{self, Requirement, Selector};
use crate::model::{NAMESPACE_NAME_LABEL, Protocol};
use crate::source::{SourceFile, Span};

/// One side of a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Side {
    /// `who` or `*`: every workload.
    Every,
    /// `namespace/name`, with the span of the name in the query.
    Workload {
        namespace: String,
        name: String,
        span: (usize, usize),
    },
    Ip(IpAddr),
    /// Pods whose namespace matches `namespaces` and whose labels match
    /// `pods`.
    Selector {
        namespaces: Selector,
        pods: Selector,
    },
}

/// An HTTP request on the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Http {
    pub method: String,
    pub path: String,
}

/// A parsed query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub from: Side,
    pub to: Side,
    pub port: Option<(u16, Protocol)>,
    pub http: Option<Http>,
}

impl Query {
    /// One flow, a yes/no question: one source, one destination, a port.
    pub fn is_single(&self) -> bool {
        let one = |s: &Side| matches!(s, Side::Workload { .. } | Side::Ip(_));
        one(&self.from) && one(&self.to) && self.port.is_some()
    }
}

#[derive(Debug)]
struct PErr<'a> {
    at: &'a str,
    expected: &'static str,
}

impl<'a> ParseError<&'a str> for PErr<'a> {
    fn from_error_kind(input: &'a str, _: ErrorKind) -> Self {
        PErr {
            at: input,
            expected: "",
        }
    }

    fn append(_: &'a str, _: ErrorKind, other: Self) -> Self {
        other
    }

    /// Of two failed alternatives, report the one that got further.
    fn or(self, other: Self) -> Self {
        if other.at.len() < self.at.len() {
            other
        } else {
            self
        }
    }
}

type R<'a, T> = IResult<&'a str, T, PErr<'a>>;

/// Name what was expected where `p` fails without consuming.
fn expect<'a, T>(
    what: &'static str,
    mut p: impl Parser<&'a str, Output = T, Error = PErr<'a>>,
) -> impl FnMut(&'a str) -> R<'a, T> {
    move |i| {
        p.parse(i).map_err(|e| {
            e.map(|mut x| {
                if x.expected.is_empty() || x.at.len() == i.len() {
                    x.expected = what;
                }
                x
            })
        })
    }
}

fn fail<'a, T>(at: &'a str, expected: &'static str) -> R<'a, T> {
    Err(nom::Err::Failure(PErr { at, expected }))
}

/// Parse a query. Errors point at the column (`<query>` is the file).
pub fn parse(text: &str) -> Result<Query, Diagnostic> {
    let file = SourceFile::new("<query>", text.to_owned());
    let error = |at: &str, message: String, help: &str| {
        let offset = text.len() - at.len();
        let len = at
            .char_indices()
            .find(|(_, c)| c.is_whitespace())
            .map(|(i, _)| i)
            .unwrap_or(at.len())
            .max(1)
            .min(text.len().saturating_sub(offset));
        Diagnostic::new(Code::InvalidQuery, message)
            .with_help(help.to_owned())
            .at(&file, Span::new(offset, len))
    };
    let help = "write `FROM -> TO[:PORT[/PROTOCOL]] [METHOD PATH]`, e.g. `shop/web -> pay/db:5432`, `who -> pay/db:5432`, `shop/web -> *`, `ns:env=prod,app=web -> ns:pay/app in (db,cache):5432`";
    match query(text) {
        Ok((_, q)) => {
            check_labels(&q).map_err(|(at, message)| error(&text[at..], message, "label keys are `[prefix/]name`, names and values at most 63 characters of letters, digits, `-`, `_`, `.`"))?;
            Ok(q)
        }
        Err(nom::Err::Error(e) | nom::Err::Failure(e)) => {
            let found = if e.at.is_empty() {
                "the end of the query".to_owned()
            } else {
                format!("`{}`", e.at.chars().next().unwrap_or(' '))
            };
            let expected = if e.expected.is_empty() {
                "a valid query"
            } else {
                e.expected
            };
            Err(error(
                e.at,
                format!("expected {expected}, found {found}"),
                help,
            ))
        }
        Err(nom::Err::Incomplete(_)) => Err(error("", "the query is incomplete".into(), help)),
    }
}

/// Validate label keys and values once parsed (the parser is lenient on
/// characters so that errors can say what is wrong).
fn check_labels(q: &Query) -> Result<(), (usize, String)> {
    for side in [&q.from, &q.to] {
        if let Side::Selector { namespaces, pods } = side {
            for r in namespaces.requirements.iter().chain(&pods.requirements) {
                labels::check_key(r.key())
                    .map_err(|why| (0, format!("invalid label key `{}`: {why}", r.key())))?;
                if let Requirement::In { values, .. } | Requirement::NotIn { values, .. } = r {
                    for v in values {
                        labels::check_value(v)
                            .map_err(|why| (0, format!("invalid label value `{v}`: {why}")))?;
                    }
                }
            }
        }
    }
    Ok(())
}

fn query(input: &str) -> R<'_, Query> {
    let (i, _) = multispace0(input)?;
    let (i, from) = expect(
        "a source (`ns/name`, `ip:ADDRESS`, `who`, `*` or a selector)",
        |i| side(input, i, true),
    )(i)?;
    let (i, _) = multispace0(i)?;
    let (i, _) = expect("`->`", tag("->"))(i)?;
    let (i, _) = multispace0(i)?;
    let (i, to) = expect(
        "a destination (`ns/name`, `ip:ADDRESS`, `*` or a selector)",
        |i| side(input, i, false),
    )(i)?;
    let (i, port) = opt(port).parse(i)?;
    let trimmed = i.trim_start();
    let (i, http) = if trimmed.is_empty() {
        (trimmed, None)
    } else if trimmed.len() == i.len() {
        return fail(i, "`:PORT`, an HTTP request or the end of the query");
    } else {
        let (rest, h) = cut(http).parse(trimmed)?;
        (rest, Some(h))
    };
    let (i, _) = multispace0(i)?;
    let (i, _) = expect("the end of the query", eof)(i)?;
    if http.is_some() && port.is_none() {
        return fail(i, "a port before the HTTP request (`:8080 GET /path`)");
    }
    Ok((
        i,
        Query {
            from,
            to,
            port,
            http,
        },
    ))
}

fn side<'a>(input: &'a str, i: &'a str, source: bool) -> R<'a, Side> {
    if source
        && let Ok((rest, _)) = terminated(
            tag::<_, _, PErr>("who"),
            peek(alt((multispace1, tag("->")))),
        )
        .parse(i)
    {
        return Ok((rest, Side::Every));
    }
    if let Ok((rest, _)) = tag::<_, _, PErr>("*").parse(i) {
        return Ok((rest, Side::Every));
    }
    if let Some(rest) = i.strip_prefix("ip:") {
        return ip(rest);
    }
    if let Ok((rest, (ns, name))) = workload(i) {
        let start = input.len() - i.len();
        return Ok((
            rest,
            Side::Workload {
                namespace: ns.to_owned(),
                name: name.to_owned(),
                span: (start, i.len() - rest.len()),
            },
        ));
    }
    selector(i)
}

/// `namespace/name`, followed by what may follow an end.
fn workload(i: &str) -> R<'_, (&str, &str)> {
    let namespace = take_while1(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let name =
        take_while1(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
    let after = peek(alt((
        eof,
        tag(":"),
        recognize(pair(multispace0, tag("->"))),
        recognize(pair(
            multispace1,
            take_while1(|c: char| c.is_ascii_uppercase()),
        )),
        multispace1,
    )));
    terminated(pair(namespace, preceded(char('/'), name)), after).parse(i)
}

fn ip(i: &str) -> R<'_, Side> {
    if let Some(rest) = i.strip_prefix('[') {
        let Some(end) = rest.find(']') else {
            return fail(rest, "`]` closing the IPv6 address");
        };
        return match rest[..end].parse::<std::net::Ipv6Addr>() {
            Ok(a) => Ok((&rest[end + 1..], Side::Ip(IpAddr::V6(a)))),
            Err(_) => fail(rest, "an IPv6 address"),
        };
    }
    let (rest, text) =
        take_while1::<_, _, PErr>(|c: char| c.is_ascii_hexdigit() || c == '.' || c == ':')(i)
            .or_else(|_| fail(i, "an IP address"))?;
    if let Ok(a) = text.parse::<IpAddr>() {
        return Ok((rest, Side::Ip(a)));
    }
    // `10.0.0.1:443`: the port belongs to the target.
    if let Some((addr, _)) = text.rsplit_once(':')
        && let Ok(a) = addr.parse::<std::net::Ipv4Addr>()
    {
        let used = addr.len();
        return Ok((&i[used..], Side::Ip(IpAddr::V4(a))));
    }
    fail(
        i,
        "an IP address (an IPv6 address with a port in brackets: `ip:[2001:db8::1]:443`)",
    )
}

fn selector(i: &str) -> R<'_, Side> {
    let (rest, terms) = separated_list1(
        delimited(multispace0, char(','), multispace0),
        expect("a label requirement or `ns:`", term),
    )
    .parse(i)?;
    let mut namespaces = Selector::default();
    let mut pods = Selector::default();
    for (ns, pod) in terms {
        namespaces.requirements.extend(ns);
        pods.requirements.extend(pod);
    }
    namespaces.requirements.sort();
    namespaces.requirements.dedup();
    pods.requirements.sort();
    pods.requirements.dedup();
    Ok((rest, Side::Selector { namespaces, pods }))
}

type Term = (Option<Requirement>, Option<Requirement>);

fn term(i: &str) -> R<'_, Term> {
    if let Some(rest) = i.strip_prefix("ns:") {
        // `pay/app=db`: a namespace by name, then a pod requirement.
        let ns_name = take_while1::<_, _, PErr>(|c: char| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
        });
        if let Ok((after, name)) = terminated(ns_name, char('/')).parse(rest) {
            let (after, pod) = expect("a pod label requirement after `/`", requirement)(after)?;
            return Ok((after, (Some(named(name)), Some(pod))));
        }
        let (after, r) = expect(
            "a namespace name or label requirement after `ns:`",
            requirement,
        )(rest)?;
        // A bare name is the namespace of that name.
        let r = match r {
            Requirement::Exists { key } if !key.contains('/') && !key.contains('.') => named(&key),
            other => other,
        };
        return Ok((after, (Some(r), None)));
    }
    let (rest, r) = requirement(i)?;
    Ok((rest, (None, Some(r))))
}

fn named(namespace: &str) -> Requirement {
    Requirement::In {
        key: NAMESPACE_NAME_LABEL.to_owned(),
        values: [namespace.to_owned()].into(),
    }
}

fn key(i: &str) -> R<'_, &str> {
    expect(
        "a label key",
        recognize(pair(
            nom::character::complete::satisfy(|c: char| c.is_ascii_alphanumeric()),
            take_while(|c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/')),
        )),
    )(i)
}

fn value(i: &str) -> R<'_, &str> {
    take_while(|c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))(i)
}

fn requirement(i: &str) -> R<'_, Requirement> {
    if let Some(rest) = i.strip_prefix('!') {
        let (rest, k) = key(rest)?;
        return Ok((rest, Requirement::DoesNotExist { key: k.to_owned() }));
    }
    let (rest, k) = key(i)?;
    let key = k.to_owned();
    let mut op = preceded(
        multispace0::<_, PErr>,
        alt((tag("=="), tag("!="), tag("="))),
    );
    if let Ok((rest, op)) = op.parse(rest) {
        let (rest, v) = preceded(multispace0, value).parse(rest)?;
        let values: BTreeSet<String> = [v.to_owned()].into();
        return Ok((
            rest,
            if op == "!=" {
                Requirement::NotIn { key, values }
            } else {
                Requirement::In { key, values }
            },
        ));
    }
    let mut set_op = delimited(
        multispace1::<_, PErr>,
        alt((tag("notin"), tag("in"))),
        multispace0,
    );
    if let Ok((rest, op)) = set_op.parse(rest) {
        let (rest, list) = cut(expect(
            "a parenthesized list of values, e.g. `(db,cache)`",
            delimited(
                char('('),
                separated_list1(
                    delimited(multispace0, char(','), multispace0),
                    preceded(
                        multispace0,
                        take_while1(|c: char| {
                            c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
                        }),
                    ),
                ),
                preceded(multispace0, char(')')),
            ),
        ))
        .parse(rest)?;
        let values: BTreeSet<String> = list.into_iter().map(str::to_owned).collect();
        return Ok((
            rest,
            if op == "in" {
                Requirement::In { key, values }
            } else {
                Requirement::NotIn { key, values }
            },
        ));
    }
    Ok((rest, Requirement::Exists { key }))
}

fn port(i: &str) -> R<'_, (u16, Protocol)> {
    let (i, _) = char(':')(i)?;
    let (rest, digits) = expect("a port number", digit1)(i)?;
    let port = match digits.parse::<u32>() {
        Ok(p) if (1..=65535).contains(&p) => p as u16,
        _ => return fail(i, "a port number from 1 to 65535"),
    };
    let (rest, protocol) = opt(preceded(
        char('/'),
        cut(expect(
            "`tcp`, `udp` or `sctp`",
            alt((tag_no_case("tcp"), tag_no_case("udp"), tag_no_case("sctp"))),
        )),
    ))
    .parse(rest)?;
    let protocol = protocol
        .and_then(|p| Protocol::parse(&p.to_ascii_uppercase()))
        .unwrap_or(Protocol::Tcp);
    Ok((rest, (port, protocol)))
}

fn http(i: &str) -> R<'_, Http> {
    let (i, method) = expect(
        "an HTTP method in capitals (`GET`)",
        take_while1(|c: char| c.is_ascii_uppercase()),
    )(i)?;
    let (i, _) = multispace1(i)?;
    let (i, path) = expect(
        "a path starting with `/`",
        recognize(preceded(
            char('/'),
            take_while(|c: char| !c.is_whitespace()),
        )),
    )(i)?;
    Ok((
        i,
        Http {
            method: method.to_owned(),
            path: path.to_owned(),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(s: &str) -> Selector {
        let Side::Selector { pods, .. } = parse(&format!("{s} -> *")).unwrap().from else {
            panic!("{s}: not a selector");
        };
        pods
    }

    #[test]
    fn every_form_parses() {
        let q = parse("shop/web -> pay/db:5432").unwrap();
        assert!(
            matches!(q.from, Side::Workload { ref namespace, ref name, .. } if namespace == "shop" && name == "web")
        );
        assert_eq!(q.port, Some((5432, Protocol::Tcp)));
        assert!(q.is_single());
        assert_eq!(
            parse("shop/web -> pay/db:5432/udp").unwrap().port,
            Some((5432, Protocol::Udp))
        );
        assert_eq!(parse("who -> pay/db:5432").unwrap().from, Side::Every);
        assert_eq!(parse("shop/web -> *").unwrap().to, Side::Every);
        let q = parse("shop/web -> pay/api:8080 GET /v1/orders").unwrap();
        assert_eq!(
            q.http,
            Some(Http {
                method: "GET".into(),
                path: "/v1/orders".into()
            })
        );
        assert_eq!(
            parse("ip:203.0.113.9 -> shop/web:8080").unwrap().from,
            Side::Ip("203.0.113.9".parse().unwrap())
        );
        let q = parse("shop/web -> ip:[2001:db8::1]:443").unwrap();
        assert_eq!(q.to, Side::Ip("2001:db8::1".parse().unwrap()));
        assert_eq!(q.port, Some((443, Protocol::Tcp)));
        let q = parse("shop/web -> ip:10.0.0.1:443").unwrap();
        assert_eq!(q.to, Side::Ip("10.0.0.1".parse().unwrap()));
    }

    #[test]
    fn selectors_follow_kubernetes_syntax() {
        let q = parse("ns:env=prod,app=web -> ns:pay/app in (db,cache):5432").unwrap();
        let Side::Selector { namespaces, pods } = q.from else {
            panic!()
        };
        assert_eq!(namespaces.to_string(), "env=prod");
        assert_eq!(pods.to_string(), "app=web");
        let Side::Selector { namespaces, pods } = q.to else {
            panic!()
        };
        assert_eq!(namespaces.to_string(), "kubernetes.io/metadata.name=pay");
        assert_eq!(pods.to_string(), "app in (cache,db)");
        assert_eq!(sel("app!=web").to_string(), "app notin (web)");
        assert_eq!(sel("app==web").to_string(), "app=web");
        assert_eq!(sel("tier notin (a, b)").to_string(), "tier notin (a,b)");
        assert_eq!(sel("!legacy,app").to_string(), "app,!legacy");
        assert_eq!(
            sel("app.kubernetes.io/name=web").to_string(),
            "app.kubernetes.io/name=web"
        );
        let q = parse("ns:kube-system -> *").unwrap();
        assert!(
            matches!(q.from, Side::Selector { ref namespaces, .. } if namespaces.to_string() == "kubernetes.io/metadata.name=kube-system")
        );
    }

    #[test]
    fn errors_point_at_the_column() {
        for (q, col) in [
            ("shop/web pay/db:5432", 10),
            ("shop/web -> pay/db:99999", 20),
            ("shop/web -> pay/db:5432/icmp", 25),
            ("shop/web -> ns:pay/app in db", 27),
            ("shop/web ->", 12),
            ("shop/web -> pay/db:80 get /x", 23),
            ("-> pay/db:80", 1),
        ] {
            let d = parse(q).unwrap_err();
            assert_eq!(d.code, Code::InvalidQuery, "{q}");
            assert_eq!(
                d.line_col().map(|(_, c)| c),
                Some(col),
                "{q}: {}",
                d.message
            );
        }
    }
}
