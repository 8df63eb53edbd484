//! `.ambit.yaml`: which rules run, at which severity, and which paths are
//! not linted.
//!
//! ```yaml
//! rules:
//!   NP008: off          # disable a rule
//!   RX101: warning      # change its severity (error, warning, info)
//! ignore:               # glob patterns, relative to this file's directory
//!   - vendor/**
//! ```
//!
//! The file is found upward from the first path given (its directory, then
//! each parent), or named with `--config`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ambit_compiler::diag::{Code, Diagnostic, Severity};
use ambit_compiler::source::SourceFile;
use ambit_compiler::yaml::{self, Seg};
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

/// The name searched for.
pub const FILE_NAME: &str = ".ambit.yaml";

/// A loaded configuration.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Per code: `None` disables it, `Some` sets its severity.
    pub rules: BTreeMap<Code, Option<Severity>>,
    /// Patterns of paths whose findings are dropped.
    ignore: Option<GlobSet>,
    /// The directory patterns are relative to.
    base: PathBuf,
    /// Where the configuration was read from.
    pub path: Option<PathBuf>,
}

impl Config {
    /// Search upward from `start` (a file or directory) for `.ambit.yaml`.
    pub fn find(start: &Path) -> Option<PathBuf> {
        let start = std::fs::canonicalize(start).ok()?;
        let mut dir = if start.is_dir() {
            Some(start.as_path())
        } else {
            start.parent()
        };
        while let Some(d) = dir {
            let candidate = d.join(FILE_NAME);
            if candidate.is_file() {
                return Some(candidate);
            }
            dir = d.parent();
        }
        None
    }

    /// Read and validate a configuration file; every problem is a located
    /// `LD034` (or `LD000`/`LD001`) diagnostic.
    pub fn load(path: &Path) -> Result<Config, Vec<Diagnostic>> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            vec![
                Diagnostic::new(
                    Code::UnreadablePath,
                    format!("cannot read `{}`: {e}", path.display()),
                )
                .with_help("check the --config path"),
            ]
        })?;
        let file = SourceFile::new(path.display().to_string(), text);
        let base = std::fs::canonicalize(path)
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or_default();
        let mut config = Config::parse(&file)?;
        config.base = base;
        config.path = Some(path.to_path_buf());
        Ok(config)
    }

    /// Parse configuration text (patterns relative to the current directory).
    pub fn parse(file: &SourceFile) -> Result<Config, Vec<Diagnostic>> {
        let mut diags = Vec::new();
        let docs = yaml::documents(file, &mut diags);
        if !diags.is_empty() {
            return Err(diags);
        }
        let mut config = Config {
            base: std::env::current_dir().unwrap_or_default(),
            ..Config::default()
        };
        let Some(doc) = docs.first() else {
            return Ok(config);
        };
        let root = doc.root();
        let bad = |path: &[Seg], message: String, help: &str| {
            Diagnostic::new(Code::InvalidConfig, message)
                .with_help(help)
                .at(file, root.locate(path))
        };
        if root.str_at(&[]).is_some() || root.sequence_len(&[]).is_some() {
            return Err(vec![bad(
                &[],
                "the configuration is not a mapping".into(),
                "write `rules:` and `ignore:` keys",
            )]);
        }
        for key in root.keys_at(&[]) {
            match key.as_str() {
                "rules" => {
                    for code in root.keys_at(&["rules".into()]) {
                        let at = [Seg::Key("rules"), Seg::Owned(code.clone())];
                        let Some(c) = Code::parse(&code) else {
                            diags.push(
                                Diagnostic::new(
                                    Code::InvalidConfig,
                                    format!("unknown rule code `{code}`"),
                                )
                                .with_help("`ambit rules` lists every code")
                                .at(file, root.locate_key(&at)),
                            );
                            continue;
                        };
                        match root.str_at(&at) {
                            Some("off") => {
                                config.rules.insert(c, None);
                            }
                            Some(s) if Severity::parse(s).is_some() => {
                                config.rules.insert(c, Severity::parse(s));
                            }
                            other => diags.push(bad(
                                &at,
                                format!(
                                    "`{}` is not a severity",
                                    other.unwrap_or("(not a string)")
                                ),
                                "use `error`, `warning`, `info` or `off`",
                            )),
                        }
                    }
                }
                "ignore" => {
                    let mut set = GlobSetBuilder::new();
                    let n = root.sequence_len(&["ignore".into()]);
                    if n.is_none() {
                        diags.push(bad(
                            &["ignore".into()],
                            "`ignore` is not a list".into(),
                            "list glob patterns, e.g. `- vendor/**`",
                        ));
                    }
                    for i in 0..n.unwrap_or(0) {
                        let at = [Seg::Key("ignore"), Seg::Index(i)];
                        match root.str_at(&at).map(|p| {
                            GlobBuilder::new(p.trim_start_matches("./"))
                                .literal_separator(true)
                                .build()
                        }) {
                            Some(Ok(glob)) => {
                                set.add(glob);
                            }
                            Some(Err(e)) => diags.push(bad(
                                &at,
                                format!("invalid pattern: {}", e.kind()),
                                "patterns are globs such as `vendor/**` or `**/generated-*.yaml`",
                            )),
                            None => diags.push(bad(
                                &at,
                                "a pattern must be a string".into(),
                                "quote the pattern",
                            )),
                        }
                    }
                    match set.build() {
                        Ok(s) => config.ignore = Some(s),
                        Err(e) => diags.push(bad(
                            &["ignore".into()],
                            format!("invalid patterns: {e}"),
                            "fix the patterns",
                        )),
                    }
                }
                other => diags.push(
                    Diagnostic::new(Code::InvalidConfig, format!("unknown key `{other}`"))
                        .with_help("the configuration has `rules` and `ignore`")
                        .at(file, root.locate_key(&[Seg::Owned(other.to_owned())])),
                ),
            }
        }
        if diags.is_empty() {
            Ok(config)
        } else {
            Err(diags)
        }
    }

    /// Is the file at `name` (as given on the command line) ignored?
    pub fn ignores(&self, name: &str) -> bool {
        let Some(set) = &self.ignore else {
            return false;
        };
        let path = Path::new(name);
        let absolute = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let relative = absolute.strip_prefix(&self.base).unwrap_or(path);
        set.is_match(relative)
    }

    /// Apply the configuration: drop disabled rules and findings in ignored
    /// files, set severities.
    pub fn apply(&self, findings: Vec<Diagnostic>) -> Vec<Diagnostic> {
        findings
            .into_iter()
            .filter_map(|mut d| {
                if let Some(setting) = self.rules.get(&d.code) {
                    d.severity = (*setting)?;
                }
                let ignored = d
                    .location
                    .as_ref()
                    .is_some_and(|l| self.ignores(l.file.name()));
                (!ignored).then_some(d)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, Vec<Diagnostic>> {
        Config::parse(&SourceFile::new(".ambit.yaml", text))
    }

    #[test]
    fn rules_and_ignores() {
        let c = parse("rules:\n  NP003: off\n  RX101: error\nignore:\n  - vendor/**\n").unwrap();
        assert_eq!(c.rules[&Code::ShadowedRule], None);
        assert_eq!(c.rules[&Code::ReachableFromOutside], Some(Severity::Error));
        assert!(c.ignores("vendor/a/b.yaml"));
        assert!(!c.ignores("policies/vendor.yaml"));
        let kept = c.apply(vec![
            Diagnostic::new(Code::ShadowedRule, "dropped"),
            Diagnostic::new(Code::ReachableFromOutside, "raised"),
            Diagnostic::new(Code::SplitRule, "as is"),
        ]);
        let got: Vec<(Code, Severity)> = kept.iter().map(|d| (d.code, d.severity)).collect();
        assert_eq!(
            got,
            [
                (Code::ReachableFromOutside, Severity::Error),
                (Code::SplitRule, Severity::Warning)
            ]
        );
    }

    #[test]
    fn an_empty_file_is_the_default() {
        let c = parse("").unwrap();
        assert!(c.rules.is_empty());
        assert!(!c.ignores("anything.yaml"));
    }

    #[test]
    fn every_problem_is_located() {
        let errs =
            parse("rules:\n  XX001: off\n  NP001: loud\nignore: vendor\nextra: 1\n").unwrap_err();
        let lines: Vec<usize> = errs.iter().map(|d| d.line_col().unwrap().0).collect();
        assert_eq!(lines, [2, 3, 4, 5]);
        assert!(errs.iter().all(|d| d.code == Code::InvalidConfig));
        let errs = parse("ignore:\n  - '['\n").unwrap_err();
        assert_eq!(errs[0].line_col(), Some((2, 5)));
        let errs = parse("- a list\n").unwrap_err();
        assert_eq!(errs[0].code, Code::InvalidConfig);
        let errs = parse("rules: [\n").unwrap_err();
        assert_eq!(errs[0].code, Code::YamlSyntax);
    }
}
