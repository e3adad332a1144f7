//! Where a finished message goes: `.eml` files in the outbox folder, or an SMTP server.

use crate::config::{ConfigError, MailSettings};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Well under the job lease (60 s by default), so a slow server fails the attempt before
/// another worker could take the same job.
const SMTP_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("writing to the outbox folder: {0}")]
    File(#[from] std::io::Error),
    #[error("SMTP: {0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
    #[error("the outbox writer stopped: {0}")]
    Task(#[from] tokio::task::JoinError),
}

#[derive(Clone)]
pub enum Transport {
    /// One `{email id}.eml` per email: a resend overwrites the same file.
    File {
        dir: PathBuf,
    },
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transport::File { dir } => write!(f, "File({})", dir.display()),
            Transport::Smtp(_) => f.write_str("Smtp"),
        }
    }
}

impl Transport {
    pub fn from_settings(mail: &MailSettings, outbox_dir: PathBuf) -> Result<Self, ConfigError> {
        match mail.transport.as_str() {
            "smtp" => {
                type Smtp = AsyncSmtpTransport<Tokio1Executor>;
                let host = mail.smtp_host.as_str();
                let builder = match mail.smtp_security.as_str() {
                    "tls" => Smtp::relay(host),
                    "starttls" => Smtp::starttls_relay(host),
                    "none" => Ok(Smtp::builder_dangerous(host)),
                    other => {
                        return Err(ConfigError::new(
                            "mail.smtp_security",
                            format!("{other:?} is not starttls, tls or none"),
                        ))
                    }
                }
                .map_err(|e| ConfigError::new("mail.smtp_host", e))?;
                let mut builder = builder.port(mail.smtp_port).timeout(Some(SMTP_TIMEOUT));
                if let Some(user) = &mail.smtp_username {
                    let password = mail
                        .smtp_password
                        .as_ref()
                        .map(|p| p.expose().to_owned())
                        .unwrap_or_default();
                    builder = builder.credentials(Credentials::new(user.clone(), password));
                }
                Ok(Transport::Smtp(builder.build()))
            }
            "file" => {
                std::fs::create_dir_all(&outbox_dir).map_err(|e| {
                    ConfigError::new(
                        "mail.outbox_dir",
                        format!("cannot create {}: {e}", outbox_dir.display()),
                    )
                })?;
                Ok(Transport::File { dir: outbox_dir })
            }
            other => Err(ConfigError::new(
                "mail.transport",
                format!("{other:?} is not file or smtp"),
            )),
        }
    }

    /// Removes an email's outbox file, if it has one (a missing file is no error).
    pub async fn forget(&self, email_id: &str) {
        if let Transport::File { dir } = self {
            let path = dir.join(format!("{email_id}.eml"));
            if let Err(e) = tokio::fs::remove_file(&path).await {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(error = %e, path = %path.display(), "could not remove an outbox file");
                }
            }
        }
    }

    /// Delivers one message. `email_id` names the outbox file.
    pub async fn send(&self, email_id: &str, message: &Message) -> Result<(), SendError> {
        match self {
            Transport::File { dir } => {
                let (dir, name, bytes) =
                    (dir.clone(), format!("{email_id}.eml"), message.formatted());
                tokio::task::spawn_blocking(move || write_atomically(&dir, &name, &bytes))
                    .await??;
                Ok(())
            }
            Transport::Smtp(smtp) => {
                smtp.send(message.clone()).await?;
                Ok(())
            }
        }
    }
}

/// Writes `dir/name` so that a reader sees the whole file or none of it: a uniquely named
/// temporary file, flushed to disk, then renamed over the target (a resend after a crash
/// replaces the same file instead of adding a second one).
fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, dir.join(name))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        write_atomically(dir.path(), "a.eml", b"first").unwrap();
        write_atomically(dir.path(), "a.eml", b"second").unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["a.eml"]);
        assert_eq!(std::fs::read(dir.path().join("a.eml")).unwrap(), b"second");
    }

    #[test]
    fn every_smtp_security_builds_a_transport() {
        for security in ["starttls", "tls", "none"] {
            let mail = MailSettings {
                transport: "smtp".into(),
                smtp_security: security.into(),
                smtp_username: Some("shop".into()),
                smtp_password: Some(crate::config::Secret::new("pw")),
                ..MailSettings::default()
            };
            let t = Transport::from_settings(&mail, PathBuf::from("unused")).unwrap();
            assert!(matches!(t, Transport::Smtp(_)), "{security}");
        }
    }
}
