//! `ambit ca init` / `ambit ca issue`: certificates for agents and tests.

use ambit_runtime::identity::{CA_CERT, CA_KEY, Ca};

use super::Status;
use crate::cli::{CaArgs, CaCommand};

pub fn run(args: &CaArgs) -> std::io::Result<Status> {
    match &args.command {
        CaCommand::Init {
            trust_domain,
            out,
            days,
            force,
        } => {
            if ambit_runtime::identity::SpiffeId::parse(&format!(
                "spiffe://{trust_domain}/ns/x/sa/y"
            ))
            .is_none()
                || trust_domain.contains('/')
            {
                eprintln!("ambit: `{trust_domain}` is not a trust domain");
                return Ok(Status::Error);
            }
            if !force && out.join(CA_KEY).exists() {
                eprintln!(
                    "ambit: {} already holds a CA key; pass --force to replace it",
                    out.display()
                );
                return Ok(Status::Error);
            }
            let ca = Ca::generate(trust_domain, *days).and_then(|ca| ca.save(out).map(|()| ca));
            match ca {
                Ok(ca) => {
                    println!(
                        "CA for trust domain {} written: {} and {}",
                        ca.trust_domain,
                        out.join(CA_CERT).display(),
                        out.join(CA_KEY).display()
                    );
                    Ok(Status::Success)
                }
                Err(e) => {
                    eprintln!("ambit: {e}");
                    Ok(Status::Error)
                }
            }
        }
        CaCommand::Issue {
            namespace,
            service_account,
            ca,
            out,
            name,
            days,
        } => {
            let loaded = match Ca::load(&ca.join(CA_CERT), &ca.join(CA_KEY)) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("ambit: {e} (create a CA with `ambit ca init --out DIR`)");
                    return Ok(Status::Error);
                }
            };
            let out = out.as_ref().unwrap_or(ca);
            let stem = name
                .clone()
                .unwrap_or_else(|| format!("{namespace}-{service_account}"));
            match loaded
                .issue(namespace, service_account, *days)
                .and_then(|issued| issued.save(out, &stem).map(|()| issued))
            {
                Ok(issued) => {
                    println!(
                        "{} written: {} and {}",
                        issued.id,
                        out.join(format!("{stem}.pem")).display(),
                        out.join(format!("{stem}-key.pem")).display()
                    );
                    Ok(Status::Success)
                }
                Err(e) => {
                    eprintln!("ambit: {e}");
                    Ok(Status::Error)
                }
            }
        }
    }
}
