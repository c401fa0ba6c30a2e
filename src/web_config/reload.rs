//! [`WebConfigFile`] keeps the file's current good version and re-reads it (and the
//! certificate, key and CA files it names) when one of them changes, as the toolkit
//! does, so certificate rotation needs no restart. A broken new version is logged and
//! the previous one stays in force.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use super::{Warnings, WebConfig};

/// How often, at most, the files are looked at again for changes. Checks happen when a
/// connection or a request arrives, so an idle exporter does no work at all.
const RECHECK: Duration = Duration::from_secs(1);

/// The web config file, watched: [`WebConfigFile::current`] is the version in force.
pub struct WebConfigFile {
    path: PathBuf,
    state: Mutex<Watch>,
}

struct Watch {
    current: Arc<WebConfig>,
    /// The files' state when last looked at, so a broken version is reported once.
    seen: Vec<Stamp>,
    checked: Instant,
}

/// What tells a file changed: modification time, length and inode (a rotated
/// certificate of the same size written within the same second still has a new inode
/// when it is renamed into place, as tools and Kubernetes do).
type Stamp = Option<(SystemTime, u64, u64)>;

fn stamps(files: &[PathBuf]) -> Vec<Stamp> {
    files
        .iter()
        .map(|f| {
            let m = std::fs::metadata(f).ok()?;
            #[cfg(unix)]
            let ino = std::os::unix::fs::MetadataExt::ino(&m);
            #[cfg(not(unix))]
            let ino = 0;
            Some((m.modified().ok()?, m.len(), ino))
        })
        .collect()
}

impl fmt::Debug for WebConfigFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WebConfigFile({})", self.path.display())
    }
}

impl WebConfigFile {
    /// Reads and validates the file; an error here stops the start.
    pub fn load(path: &Path) -> Result<(WebConfigFile, Warnings), String> {
        let (config, warnings) = WebConfig::from_file(path)?;
        let seen = stamps(&config.files);
        Ok((
            WebConfigFile {
                path: path.to_path_buf(),
                state: Mutex::new(Watch {
                    current: Arc::new(config),
                    seen,
                    checked: Instant::now(),
                }),
            },
            warnings,
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The version in force, re-read first when a file changed (looked at no more than
    /// once per [`RECHECK`]).
    pub fn current(&self) -> Arc<WebConfig> {
        let mut w = match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if w.checked.elapsed() < RECHECK {
            return Arc::clone(&w.current);
        }
        w.checked = Instant::now();
        let now = stamps(&w.current.files);
        if now == w.seen {
            return Arc::clone(&w.current);
        }
        w.seen = now;
        match WebConfig::from_file(&self.path) {
            Ok((next, warnings)) => {
                for warning in warnings {
                    tracing::warn!("{warning}");
                }
                if next.tls_enabled() != w.current.tls_enabled() {
                    tracing::warn!(file = %self.path.display(), "web config changed TLS on or off; that needs a restart, so the previous web config stays in force");
                    return Arc::clone(&w.current);
                }
                // The new version may name other files: watch those from now on.
                w.seen = stamps(&next.files);
                w.current = Arc::new(next);
                tracing::info!(file = %self.path.display(), tls = w.current.tls_enabled(), users = w.current.users.len(), "web config reloaded");
            }
            Err(e) => {
                tracing::warn!(error = %e, "web config not reloaded; the previous one stays in force");
            }
        }
        Arc::clone(&w.current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web_config::tests::{Pki, TLS, hash};

    #[test]
    fn reload_keeps_the_good_version_when_the_new_one_is_broken() {
        let pki = Pki::new();
        let path = pki.dir.path().join("web.yml");
        std::fs::write(&path, format!("basic_auth_users:\n  alice: {}\n", hash())).unwrap();
        let (watched, _) = WebConfigFile::load(&path).unwrap();
        assert_eq!(watched.current().users.len(), 1);
        let force_recheck = |w: &WebConfigFile| {
            w.state.lock().unwrap().checked = Instant::now() - RECHECK * 2;
        };
        // Broken: the old version stays.
        std::fs::write(&path, "basic_auth_users: [\n").unwrap();
        force_recheck(&watched);
        assert_eq!(watched.current().users[0].name, "alice");
        // Fixed, with another user: picked up.
        std::fs::write(&path, format!("basic_auth_users:\n  bob: {}\n", hash())).unwrap();
        force_recheck(&watched);
        assert_eq!(watched.current().users[0].name, "bob");
        // Turning TLS on needs a restart: refused, old version stays.
        std::fs::write(&path, TLS).unwrap();
        force_recheck(&watched);
        assert!(watched.current().tls.is_none());
    }
}
