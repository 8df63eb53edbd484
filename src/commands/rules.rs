//! `ambit rules [CODE]`: the registry of codes, or one code explained.

use ambit_compiler::diag::{Code, Diagnostic};
use ambit_lint::registry;

use super::Status;
use crate::cli::RulesArgs;
use crate::render;

pub fn run(args: &RulesArgs) -> std::io::Result<Status> {
    let Some(wanted) = &args.code else {
        println!("{:<7} {:<8} {:<32} SUMMARY", "CODE", "LEVEL", "NAME");
        for code in Code::ALL {
            println!(
                "{:<7} {:<8} {:<32} {}",
                code.as_str(),
                code.severity().as_str(),
                code.name(),
                code.summary()
            );
        }
        return Ok(Status::Success);
    };
    let upper = wanted.to_ascii_uppercase();
    let Some(code) =
        Code::parse(&upper).or_else(|| Code::ALL.iter().copied().find(|c| c.name() == wanted))
    else {
        let names: Vec<String> = Code::ALL.iter().map(|c| c.as_str().to_owned()).collect();
        let mut help = "`ambit rules` lists every code".to_owned();
        if let Some(c) = names
            .iter()
            .min_by_key(|c| strsim::levenshtein(&upper, c))
            .filter(|c| strsim::levenshtein(&upper, c) <= 2)
        {
            help = format!("did you mean `{c}`? {help}");
        }
        render::diagnostics(
            &[
                Diagnostic::new(Code::InvalidQuery, format!("unknown rule `{wanted}`"))
                    .with_help(help),
            ],
            false,
        );
        return Ok(Status::Error);
    };
    let doc = registry::doc(code);
    println!(
        "{} {} ({})",
        code.as_str(),
        code.name(),
        code.severity().as_str()
    );
    println!();
    println!("{}", code.summary());
    println!();
    println!("{}", doc.explanation);
    for (title, example) in [("Bad", doc.bad), ("Good", doc.good)] {
        println!();
        println!("{title}:");
        println!();
        for line in example.lines() {
            println!("    {line}");
        }
    }
    Ok(Status::Success)
}
