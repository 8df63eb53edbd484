//! SARIF 2.1.0 output (`ambit lint -o sarif`), as GitHub code scanning
//! reads it: one run, the tool driver with every rule of the registry (id,
//! name, descriptions, help, default level), and one result per finding
//! with its rule, level, message and physical location (file, line,
//! column; columns count Unicode code points, as ambit's do).

use ambit_compiler::diag::{Code, Diagnostic, Severity};
use serde_sarif::sarif::{
    ArtifactLocation, Location, Message, MultiformatMessageString, PhysicalLocation, Region,
    ReportingConfiguration, ReportingDescriptor, Result as SarifResult, ResultLevel, Run, Sarif,
    Tool, ToolComponent,
};

use crate::registry;

/// The SARIF schema a log names.
const SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

fn level(s: Severity) -> ResultLevel {
    match s {
        Severity::Error => ResultLevel::Error,
        Severity::Warning => ResultLevel::Warning,
        Severity::Info => ResultLevel::Note,
    }
}

fn level_name(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "note",
    }
}

/// A rule's help: the explanation and the examples, as text and Markdown.
fn help(code: Code) -> MultiformatMessageString {
    let doc = registry::doc(code);
    let mut text = doc.explanation.to_owned();
    let mut markdown = doc.explanation.to_owned();
    for (title, example) in [("Bad", doc.bad), ("Good", doc.good)] {
        text.push_str(&format!("\n\n{title}:\n{example}"));
        markdown.push_str(&format!("\n\n**{title}**\n\n```yaml\n{example}```"));
    }
    MultiformatMessageString::builder()
        .text(text)
        .markdown(markdown)
        .build()
}

fn descriptor(code: Code) -> ReportingDescriptor {
    ReportingDescriptor::builder()
        .id(code.as_str())
        .name(code.name())
        .short_description(
            MultiformatMessageString::builder()
                .text(code.summary())
                .build(),
        )
        .full_description(
            MultiformatMessageString::builder()
                .text(registry::doc(code).explanation)
                .build(),
        )
        .help(help(code))
        .default_configuration(
            ReportingConfiguration::builder()
                .level(serde_json::Value::from(level_name(code.severity())))
                .build(),
        )
        .build()
}

fn result(d: &Diagnostic) -> SarifResult {
    let rule_index = Code::ALL
        .iter()
        .position(|c| *c == d.code)
        .expect("every code is in the registry") as i64;
    let mut text = d.message.clone();
    if let Some(help) = &d.help {
        text.push_str(&format!(" ({help})"));
    }
    let builder = SarifResult::builder()
        .rule_id(d.code.as_str())
        .rule_index(rule_index)
        .level(level(d.severity))
        .message(Message::builder().text(text).build());
    match (&d.location, d.line_col()) {
        (Some(loc), Some((line, column))) => {
            let uri = loc.file.name().trim_start_matches("./").replace('\\', "/");
            let physical = PhysicalLocation::builder()
                .artifact_location(ArtifactLocation::builder().uri(uri).build())
                .region(
                    Region::builder()
                        .start_line(line as i64)
                        .start_column(column as i64)
                        .build(),
                )
                .build();
            builder
                .locations(vec![
                    Location::builder().physical_location(physical).build(),
                ])
                .build()
        }
        _ => builder.build(),
    }
}

/// The SARIF log of `findings`.
pub fn log(findings: &[Diagnostic]) -> Sarif {
    let driver = ToolComponent::builder()
        .name("ambit")
        .semantic_version(env!("CARGO_PKG_VERSION"))
        .information_uri("https://github.com/ambit-dev/ambit")
        .rules(Code::ALL.iter().map(|c| descriptor(*c)).collect::<Vec<_>>())
        .build();
    let run = Run::builder()
        .tool(Tool::builder().driver(driver).build())
        .column_kind(serde_json::Value::from("unicodeCodePoints"))
        .results(findings.iter().map(result).collect::<Vec<_>>())
        .build();
    Sarif::builder()
        .schema(SCHEMA)
        .version(serde_json::Value::from("2.1.0"))
        .runs(vec![run])
        .build()
}

/// The SARIF log as pretty JSON.
pub fn to_string(findings: &[Diagnostic]) -> String {
    serde_json::to_string_pretty(&log(findings)).expect("a SARIF log serializes")
}
