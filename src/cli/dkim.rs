//! `digest dkim keygen`: a key pair, and the DNS record to publish.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use super::DkimAlgorithm;
use dailydigest::config::Config;

pub(super) fn keygen(
    config: &Config,
    selector: &str,
    algorithm: DkimAlgorithm,
    out: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    use std::os::unix::fs::OpenOptionsExt;
    let kind = match algorithm {
        DkimAlgorithm::Rsa => dailydigest::mail::dkim::KeyKind::Rsa,
        DkimAlgorithm::Ed25519 => dailydigest::mail::dkim::KeyKind::Ed25519,
    };
    if !dailydigest::config::is_dns_name(selector) {
        return Err(dailydigest::config::ConfigError::Invalid {
            key: "dkim_selector",
            message: format!(
                "{selector:?} is not a DNS label (letters, digits and '-', at most 63 characters, dots between labels)"
            ),
        }
        .into());
    }
    let (pem, txt) = dailydigest::mail::dkim::keygen(kind).map_err(|e| anyhow::anyhow!(e))?;
    let path = out.unwrap_or_else(|| PathBuf::from(format!("dkim-{selector}.pem")));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| {
            format!(
                "creating {} (an existing key is never overwritten)",
                path.display()
            )
        })?;
    file.write_all(pem.as_bytes())?;
    let domain = config
        .dkim_domain
        .clone()
        .unwrap_or_else(|| config.from.email.domain().to_owned());
    eprintln!("wrote the private key to {} (keep it secret); publish this DNS record, then set dkim_key_file = {:?} and dkim_selector = {selector:?}:", path.display(), path.display().to_string());
    println!("{selector}._domainkey.{domain}. IN TXT \"{txt}\"");
    Ok(ExitCode::SUCCESS)
}
