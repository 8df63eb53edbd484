//! Labels and label selectors.
//!
//! Syntax follows the Kubernetes API validation (`IsQualifiedName`,
//! `IsValidLabelValue`); semantics follow `metav1.LabelSelectorAsSelector`:
//! `matchLabels` and `matchExpressions` are ANDed, an empty selector matches
//! everything, `NotIn` and `DoesNotExist` match objects without the key.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

pub type Labels = BTreeMap<String, String>;

/// One requirement of a selector.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "PascalCase")]
pub enum Requirement {
    In {
        key: String,
        values: BTreeSet<String>,
    },
    NotIn {
        key: String,
        values: BTreeSet<String>,
    },
    Exists {
        key: String,
    },
    DoesNotExist {
        key: String,
    },
}

impl Requirement {
    pub fn matches(&self, labels: &Labels) -> bool {
        match self {
            Requirement::In { key, values } => labels.get(key).is_some_and(|v| values.contains(v)),
            Requirement::NotIn { key, values } => {
                labels.get(key).is_none_or(|v| !values.contains(v))
            }
            Requirement::Exists { key } => labels.contains_key(key),
            Requirement::DoesNotExist { key } => !labels.contains_key(key),
        }
    }

    pub fn key(&self) -> &str {
        match self {
            Requirement::In { key, .. }
            | Requirement::NotIn { key, .. }
            | Requirement::Exists { key }
            | Requirement::DoesNotExist { key } => key,
        }
    }
}

/// A label selector: the conjunction of its requirements. Empty matches all.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Selector {
    pub requirements: Vec<Requirement>,
}

impl Selector {
    pub fn everything() -> Self {
        Self::default()
    }

    pub fn matches(&self, labels: &Labels) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    pub fn is_everything(&self) -> bool {
        self.requirements.is_empty()
    }
}

impl std::fmt::Display for Selector {
    /// Kubernetes' selector string syntax (`app=web,tier in (a,b),!legacy`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.requirements.is_empty() {
            return f.write_str("{}");
        }
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let join = |v: &BTreeSet<String>| v.iter().cloned().collect::<Vec<_>>().join(",");
            match r {
                Requirement::In { key, values } if values.len() == 1 => {
                    write!(f, "{key}={}", join(values))?
                }
                Requirement::In { key, values } => write!(f, "{key} in ({})", join(values))?,
                Requirement::NotIn { key, values } => write!(f, "{key} notin ({})", join(values))?,
                Requirement::Exists { key } => write!(f, "{key}")?,
                Requirement::DoesNotExist { key } => write!(f, "!{key}")?,
            }
        }
        Ok(())
    }
}

/// Why a label key is invalid, if it is.
pub fn check_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        check_dns_subdomain(prefix).map_err(|e| format!("prefix `{prefix}` {e}"))?;
    }
    check_name_part(name).map_err(|e| format!("name part `{name}` {e}"))
}

/// Why a label value is invalid, if it is. Empty values are valid.
pub fn check_value(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    check_name_part(value)
}

fn check_name_part(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.len() > 63 {
        return Err(format!(
            "must be at most 63 characters (it has {})",
            s.len()
        ));
    }
    let alnum = |c: char| c.is_ascii_alphanumeric();
    if !s.starts_with(alnum) || !s.ends_with(alnum) {
        return Err("must begin and end with a letter or digit".into());
    }
    if let Some(c) = s
        .chars()
        .find(|&c| !(alnum(c) || c == '-' || c == '_' || c == '.'))
    {
        return Err(format!(
            "contains `{c}`; only letters, digits, `-`, `_` and `.` are allowed"
        ));
    }
    Ok(())
}

fn check_dns_subdomain(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 253 {
        return Err("must be a DNS subdomain of 1 to 253 characters".into());
    }
    for part in s.split('.') {
        let ok = !part.is_empty()
            && part.len() <= 63
            && part.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && part.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && part
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !ok {
            return Err("must be a lowercase DNS subdomain (e.g. `example.com`)".into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn not_in_and_does_not_exist_match_missing_keys() {
        let l = labels(&[("app", "web")]);
        let values: BTreeSet<String> = ["x".to_string()].into();
        assert!(
            Requirement::NotIn {
                key: "tier".into(),
                values: values.clone()
            }
            .matches(&l)
        );
        assert!(
            !Requirement::In {
                key: "tier".into(),
                values
            }
            .matches(&l)
        );
        assert!(Requirement::DoesNotExist { key: "tier".into() }.matches(&l));
        assert!(Selector::everything().matches(&l));
    }

    #[test]
    fn label_syntax() {
        assert!(check_key("app").is_ok());
        assert!(check_key("kubernetes.io/metadata.name").is_ok());
        assert!(check_key("Bad_Prefix/x").is_err());
        assert!(check_key("-app").is_err());
        assert!(check_key(&"a".repeat(64)).is_err());
        assert!(check_value("").is_ok());
        assert!(check_value("v1.2_3-x").is_ok());
        assert!(check_value("has space").is_err());
    }
}
