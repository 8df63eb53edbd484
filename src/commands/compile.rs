//! `ambit compile PATHS -o tables.json`

use std::io::Write;
use std::path::Path;

use ambit_compiler::authz::View;
use ambit_verifier::check::Outcome;

use crate::cli::CompileArgs;
use crate::commands::{Status, load};

pub fn run(args: &CompileArgs, verbose: u8) -> std::io::Result<Status> {
    let (cluster, tables) = match load(&args.input, false, verbose) {
        Ok(t) => t,
        Err(status) => return Ok(status),
    };
    if args.check {
        let options = crate::commands::compile_options(&args.input);
        match ambit_verifier::check::check(&cluster, &tables, &options) {
            Outcome::Proved { workloads, authz } => eprintln!(
                "checked: the tables decide as the policy semantics for every flow between the {workloads} workloads and from or to any outside address, on every port and protocol{}",
                if authz {
                    ", with the authorization of an L4 enforcer and of an L7 one for any HTTP request"
                } else {
                    ""
                }
            ),
            Outcome::Mismatch(m) => {
                let request = match (&m.view, &m.request) {
                    (View::L4, _) => String::new(),
                    (View::Full, None) => " (L7 enforcer, opaque TCP)".to_owned(),
                    (View::Full, Some(r)) => format!(
                        " (L7 enforcer, request {} {} host {:?})",
                        r.method.as_deref().unwrap_or("GET"),
                        r.path.as_deref().unwrap_or("/"),
                        r.host.as_deref().unwrap_or_default()
                    ),
                };
                eprintln!(
                    "ambit: the tables and the policy semantics differ (a compiler bug): {} -> {} {}/{}{request}: tables {}, semantics {}",
                    m.from,
                    m.to,
                    m.port,
                    m.protocol,
                    verdict(m.tables),
                    verdict(m.semantics)
                );
                return Ok(Status::Failure);
            }
            Outcome::Unknown(why) => {
                eprintln!("ambit: the solver could not decide the check: {why}");
                return Ok(Status::Failure);
            }
        }
    }
    let json = tables.to_json();
    if args.output == "-" || args.output == "json" {
        std::io::stdout().lock().write_all(json.as_bytes())?;
        return Ok(Status::Success);
    }
    if args.output == "configmap" {
        return configmap(args, &tables, &json);
    }
    let path = Path::new(&args.output);
    // A device or a pipe (`/dev/stdout`, `/dev/null`, a FIFO) is written
    // to, never replaced.
    if std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir()) {
        let written = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|mut f| f.write_all(json.as_bytes()));
        if let Err(e) = written {
            eprintln!("ambit: cannot write `{}`: {e}", path.display());
            return Ok(Status::Error);
        }
        return Ok(Status::Success);
    }
    // A file is written next to the target and renamed, so that a failure
    // never leaves a partial file behind.
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let written = tempfile::NamedTempFile::new_in(dir).and_then(|mut tmp| {
        tmp.write_all(json.as_bytes())?;
        tmp.as_file().sync_all()?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            tmp.as_file()
                .set_permissions(std::fs::Permissions::from_mode(0o644))?;
        }
        tmp.persist(path).map_err(|e| e.error)
    });
    if let Err(e) = written {
        eprintln!("ambit: cannot write `{}`: {e}", path.display());
        return Ok(Status::Error);
    }
    eprintln!(
        "compiled {} workloads ({} classes), {} policies, {} rules into {} ({} bytes, {})",
        tables.workloads.len(),
        tables.classes.len(),
        tables.policies.len(),
        tables.rules.len(),
        path.display(),
        json.len(),
        tables.input_hash,
    );
    Ok(Status::Success)
}

/// The ConfigMap the agents mount: `data["tables.json"]` is the table file,
/// byte for byte; annotations carry its hashes so that `kubectl get` shows
/// which table is shipped (the agents' `/tables` shows the same `sha256`).
fn configmap(
    args: &CompileArgs,
    tables: &ambit_compiler::table::Tables,
    json: &str,
) -> std::io::Result<Status> {
    const LIMIT: usize = 1024 * 1024;
    if json.len() > LIMIT - 4096 {
        eprintln!(
            "ambit: the tables are {} bytes; a ConfigMap holds at most 1 MiB. Ship them as a file (-o FILE) in a volume instead",
            json.len()
        );
        return Ok(Status::Error);
    }
    let sha256 = ambit_runtime::tables::sha256(json.as_bytes());
    let cm = serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": args.name,
            "namespace": args.configmap_namespace,
            "labels": {"app.kubernetes.io/name": "ambit", "app.kubernetes.io/component": "tables"},
            "annotations": {
                "ambit.dev/tables-sha256": sha256,
                "ambit.dev/input-hash": tables.input_hash,
            },
        },
        "data": {"tables.json": json},
    });
    let yaml = serde_saphyr::to_string(&cm).map_err(std::io::Error::other)?;
    std::io::stdout().lock().write_all(yaml.as_bytes())?;
    Ok(Status::Success)
}

fn verdict(allowed: bool) -> &'static str {
    if allowed { "allow" } else { "deny" }
}
